//! Issue 15, item 5: the bad-input corpus through real `kubectl apply` on the local cluster
//! (Kubernetes 1.20: a structural schema, no CEL, unknown fields pruned).
//!
//! Every case is a file with its expected outcome on 1.20 in a `# on-1.20:` header:
//! `tests/invalid/*.yaml` (invalid BurstScalers, also checked offline by `tests/crd.rs`) and
//! `tests/corpus/*.yaml` (inputs that are not invalid BurstScaler objects: unknown fields, pods
//! that do not exist, overlaps, pods with a malformed burst-scaler annotation). Outcomes:
//! - `refused`: `kubectl apply` exits non-zero, its stderr names the field (`# field:`, or
//!   `# stderr-field:` where the server names it otherwise) and `# expect:`, nothing is stored;
//! - `ready-false`: stored; the controller reports `Ready=False` (`InvalidSpec`, or
//!   `# reason:`) with validate()'s `field: message`;
//! - `ready-true`: stored and valid: `Ready=True` (its message contains `# expect:`);
//! - `pruned`: stored without the field `# pruned:` (1.20 drops unknown fields silently), and
//!   `Ready=True`;
//! - `conflict`: every BurstScaler of `# object:` reports `Conflict=True` with `# expect:`;
//! - `bad-pod-event`: a Warning Event `BadPodData` on `# object:` whose note contains `# expect:`;
//! - `unchanged`: nothing to report on the objects; the pods stay as they were (checked for
//!   every case at the end).
//!
//! One controller process, scoped to the test's namespace, sees every case at once. At the end
//! no pod was changed (resources and the original-resources annotation as created) and the
//! controller is still Ready.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use burst_scaler::api::{BurstScaler, ORIGINAL_RESOURCES_ANNOTATION};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::{Value, json};
use support::*;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// One case of the corpus, as read from its file.
#[derive(Debug, Clone)]
struct Case {
    /// `invalid/NAME.yaml` or `corpus/NAME.yaml`.
    file: String,
    /// The manifest as applied: names and namespace rewritten for this test.
    manifest: String,
    outcome: String,
    field: String,
    message: String,
    /// Extra text the outcome must show (stderr, condition message or Event note).
    expect: Option<String>,
    /// For `refused`: how the refusal names the field when it differs from `# field:` (the
    /// 1.20 API server names a list, `spec.containers`, for a pattern or length error of one
    /// of its items).
    stderr_field: Option<String>,
    /// For `ready-false`: the condition's reason (default `InvalidSpec`).
    reason: Option<String>,
    /// For `pruned`: the dotted path that must be absent from the stored object.
    pruned: Option<String>,
    /// The BurstScalers whose condition is checked.
    objects: Vec<String>,
    kubectl_flags: Vec<String>,
}

fn load_cases(ns: &str) -> Vec<Case> {
    let mut out = vec![];
    for dir in ["invalid", "corpus"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(repo(&format!("tests/{dir}")))
            .unwrap_or_else(|e| panic!("tests/{dir}: {e}"))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).expect("read case");
            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
            let file = format!("{dir}/{stem}.yaml");
            let need = |k: &str| header(&text, k).unwrap_or_else(|| panic!("{file}: no `# {k}:`"));
            // Invalid samples are all named `bad` in `default`: give each its own name.
            let manifest = text
                .replace(
                    "{name: bad, namespace: default}",
                    &format!("{{name: {stem}, namespace: {ns}}}"),
                )
                .replace("namespace: default", &format!("namespace: {ns}"));
            let objects = match header(&text, "object") {
                Some(o) => o.split_whitespace().map(String::from).collect(),
                None => vec![stem.clone()],
            };
            out.push(Case {
                file: file.clone(),
                manifest,
                outcome: need("on-1.20"),
                field: header(&text, "field").unwrap_or_default(),
                message: header(&text, "message").unwrap_or_default(),
                expect: header(&text, "expect"),
                pruned: header(&text, "pruned"),
                reason: header(&text, "reason"),
                stderr_field: header(&text, "stderr-field"),
                objects,
                kubectl_flags: header(&text, "kubectl")
                    .map(|f| f.split_whitespace().map(String::from).collect())
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// What `kubectl apply -f -` said.
#[derive(Debug, Clone)]
struct Applied {
    ok: bool,
    stderr: String,
}

fn kubectl_apply(case: &Case) -> Applied {
    let mut child = Command::new("kubectl")
        .args(["apply", "--request-timeout=30s", "-f", "-"])
        .args(&case.kubectl_flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl (from `tests/cluster/kube-local env`)");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(case.manifest.as_bytes())
            .expect("write manifest");
    }
    let out = child.wait_with_output().expect("kubectl");
    Applied {
        ok: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// Everything observed about the cluster in one round of checks.
struct Observed {
    scalers: BTreeMap<String, BurstScaler>,
    raw: BTreeMap<String, Value>,
    events: Vec<Event>,
}

async fn observe(ns: &TestNs) -> Option<Observed> {
    let scalers: Api<BurstScaler> = ns.api();
    let ar = ApiResource::erase::<BurstScaler>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &ar);
    let events: Api<Event> = ns.api();
    let lp = ListParams::default();
    Some(Observed {
        scalers: scalers
            .list(&lp)
            .await
            .ok()?
            .items
            .into_iter()
            .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
            .collect(),
        raw: raw
            .list(&lp)
            .await
            .ok()?
            .items
            .into_iter()
            .map(|o| {
                let name = o.metadata.name.clone().unwrap_or_default();
                (name, o.data)
            })
            .collect(),
        events: events.list(&lp).await.ok()?.items,
    })
}

/// `Ok(())` when the case shows its outcome, else what was seen instead.
fn check(case: &Case, applied: &Applied, seen: &Observed) -> Result<(), String> {
    let first_line = |s: &str| s.lines().next().unwrap_or("").to_string();
    let stored = |name: &str| seen.scalers.get(name);
    let ready_of = |name: &str| {
        stored(name)
            .and_then(|s| condition(s, "Ready"))
            .map_or("no Ready condition yet".to_string(), |(st, r, m)| {
                format!("Ready={st}/{r}: {m}")
            })
    };
    if case.outcome != "refused" && !applied.ok {
        return Err(format!("refused: {}", first_line(&applied.stderr)));
    }
    match case.outcome.as_str() {
        "refused" => {
            if applied.ok {
                let name = case.objects.first().map_or("", String::as_str);
                return Err(format!("accepted ({})", ready_of(name)));
            }
            let mut want = vec![];
            let field = case.stderr_field.as_ref().unwrap_or(&case.field);
            if !field.is_empty() {
                want.push(field.clone());
            }
            want.extend(case.expect.clone());
            if let Some(w) = want.iter().find(|w| !applied.stderr.contains(w.as_str())) {
                return Err(format!(
                    "refused, but stderr does not name {w:?}: {}",
                    applied.stderr
                ));
            }
            if let Some(o) = case.objects.iter().find(|o| stored(o).is_some()) {
                return Err(format!("refused, yet {o} is stored"));
            }
            Ok(())
        }
        "ready-false" | "ready-true" | "pruned" => {
            let name = case.objects.first().map_or("", String::as_str);
            let s = stored(name).ok_or_else(|| format!("{name} is not stored"))?;
            let (st, reason, msg) = condition(s, "Ready").ok_or_else(|| ready_of(name))?;
            let want_status = if case.outcome == "ready-false" {
                "False"
            } else {
                "True"
            };
            if st != want_status {
                return Err(ready_of(name));
            }
            if case.outcome == "ready-false" {
                let want = format!("{}: {}", case.field, case.message);
                let want_reason = case.reason.as_deref().unwrap_or("InvalidSpec");
                if reason != want_reason || (!case.message.is_empty() && !msg.contains(&want)) {
                    return Err(format!("{} (want {want_reason}: {want:?})", ready_of(name)));
                }
            }
            if let Some(e) = &case.expect
                && !msg.contains(e.as_str())
            {
                return Err(format!("{} (want {e:?})", ready_of(name)));
            }
            if s.status.as_ref().and_then(|st| st.observed_generation) != s.metadata.generation {
                return Err(format!("{}: status of an older generation", ready_of(name)));
            }
            if let Some(path) = &case.pruned {
                let raw = seen.raw.get(name).ok_or("not stored (raw)")?;
                let pointer = format!("/{}", path.replace('.', "/"));
                if let Some(v) = raw.pointer(&pointer) {
                    return Err(format!("stored with {path} = {v} (not pruned)"));
                }
            } else if case.outcome == "pruned" {
                return Err("a `pruned` case needs `# pruned:`".into());
            }
            Ok(())
        }
        "conflict" => {
            for name in &case.objects {
                let s = stored(name).ok_or_else(|| format!("{name} is not stored"))?;
                let (st, reason, msg) = condition(s, "Conflict")
                    .ok_or_else(|| format!("{name}: no Conflict condition yet"))?;
                let e = case.expect.as_deref().unwrap_or("");
                if st != "True" || reason != "OverlappingBurstScaler" || !msg.contains(e) {
                    return Err(format!("{name}: Conflict={st}/{reason}: {msg}"));
                }
            }
            Ok(())
        }
        "bad-pod-event" => {
            let name = case.objects.first().map_or("", String::as_str);
            let e = case.expect.as_deref().unwrap_or("");
            let found = seen.events.iter().any(|ev| {
                ev.reason.as_deref() == Some("BadPodData")
                    && ev.type_.as_deref() == Some("Warning")
                    && ev.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && ev.note.as_deref().is_some_and(|n| n.contains(e))
            });
            if found {
                Ok(())
            } else {
                let notes: Vec<String> = seen
                    .events
                    .iter()
                    .filter(|ev| {
                        ev.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    })
                    .map(|ev| {
                        format!(
                            "{}: {}",
                            ev.reason.clone().unwrap_or_default(),
                            ev.note.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                Err(format!(
                    "no BadPodData Warning on {name}; Events: {notes:?}"
                ))
            }
        }
        "unchanged" => Ok(()),
        other => Err(format!("unknown outcome {other:?}")),
    }
}

/// A pod that only sleeps (bounded: 10 minutes), request 100m / limit 200m.
fn sleeper(name: &str, app: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": BUSYBOX,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", "sleep 600"],
                "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}
            }]
        }
    })
}

/// CPU requests and limits of every container, and the original-resources annotation.
fn pod_state(p: &Value) -> (Value, Value) {
    let resources: Vec<Value> = p["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({"name": c["name"], "cpu": [c["resources"]["requests"]["cpu"], c["resources"]["limits"]["cpu"]]})
        })
        .collect();
    let annotation = p["metadata"]["annotations"][ORIGINAL_RESOURCES_ANNOTATION].clone();
    (json!(resources), annotation)
}

/// The same quantity, however it was spelt (`0.2` and `200m`).
fn normalize(v: &Value) -> Value {
    match v {
        Value::String(s) => burst_scaler::quantity::parse_cpu(s)
            .map(|m| json!(m.0))
            .unwrap_or_else(|_| v.clone()),
        Value::Number(_) => burst_scaler::quantity::parse_cpu(&v.to_string())
            .map(|m| json!(m.0))
            .unwrap_or_else(|_| v.clone()),
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = if k == "name" { v.clone() } else { normalize(v) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[tokio::test]
#[ignore = "needs the local cluster (tests/cluster/kube-local up)"]
async fn every_bad_input_is_refused_or_reported_and_changes_no_pod() {
    let ns = TestNs::new("bad").await;
    // Dropped after the controller, before the namespace (locals drop in reverse order).
    let _finalizers = DropFinalizers(ns.name.clone());
    install_crd(&ns.client).await;
    let pods: Api<Pod> = ns.api();
    // The pods the invalid samples select (app=web, app=compile), as created.
    let mut created: BTreeMap<String, (Value, Value)> = BTreeMap::new();
    for (name, app) in [("web-1", "web"), ("compile-1", "compile")] {
        let p = sleeper(name, app);
        created.insert(name.into(), pod_state(&p));
        ns.create::<Pod>(p).await;
    }
    let ctl = Controller::start(&ns.name, &[], "bad-input");
    // kubectl validates client-side against the OpenAPI the server publishes (1.20 has no
    // server-side field validation); the server publishes a CRD's schema shortly after it
    // changes: wait until kubectl knows the fields (best effort, bounded).
    for _ in 0..20 {
        let known = Command::new("kubectl")
            .args(["explain", "burstscalers.spec.latencySensitive.signals"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if known {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let cases = load_cases(&ns.name);
    assert!(cases.len() >= 50, "the corpus has {} cases", cases.len());
    // The pods of the corpus, as their files create them.
    for c in &cases {
        let docs: Vec<Value> = serde_saphyr::from_multiple(&c.manifest)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", c.file));
        for d in docs.iter().filter(|d| d["kind"] == "Pod") {
            let name = d["metadata"]["name"]
                .as_str()
                .expect("pod name")
                .to_string();
            created.insert(name, pod_state(d));
        }
    }

    // Apply every case, six kubectl processes at a time (they mostly wait for the server).
    let started = std::time::Instant::now();
    let applied: Vec<Applied> = std::thread::scope(|scope| {
        let mut out = Vec::with_capacity(cases.len());
        for chunk in cases.chunks(6) {
            let handles: Vec<_> = chunk
                .iter()
                .map(|c| scope.spawn(move || kubectl_apply(c)))
                .collect();
            out.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("kubectl thread")),
            );
        }
        out
    });
    eprintln!(
        "applied {} cases in {:.1}s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );

    // Wait for every outcome together, bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let results: Vec<Result<(), String>> = loop {
        let results: Vec<Result<(), String>> = match observe(&ns).await {
            Some(seen) => cases
                .iter()
                .zip(&applied)
                .map(|(c, a)| check(c, a, &seen))
                .collect(),
            None => vec![Err("cannot list the namespace's objects".into()); cases.len()],
        };
        if results.iter().all(Result::is_ok) || tokio::time::Instant::now() > deadline {
            break results;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let mut table = String::new();
    for ((c, a), r) in cases.iter().zip(&applied).zip(&results) {
        let kubectl = if a.ok {
            "applied".to_string()
        } else {
            format!(
                "refused: {}",
                a.stderr
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(160)
                    .collect::<String>()
            )
        };
        let verdict = match r {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("MISMATCH: {e}"),
        };
        table.push_str(&format!(
            "{:<55} {:<13} {verdict}\n    kubectl {kubectl}\n",
            c.file, c.outcome
        ));
    }
    eprintln!("{table}");
    let failed: Vec<&str> = cases
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_err())
        .map(|(c, _)| c.file.as_str())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases did not show their outcome on 1.20: {failed:?}\n{table}",
        failed.len(),
        cases.len()
    );

    // A few more passes, then: no pod was changed by any case, the controller is still Ready.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let listed = pods.list(&ListParams::default()).await.expect("pods");
    for p in &listed.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let now = pod_state(&serde_json::to_value(p).expect("pod json"));
        let was = created
            .get(&name)
            .unwrap_or_else(|| panic!("pod {name} was not created by the test"));
        assert_eq!(
            (normalize(&now.0), &now.1),
            (normalize(&was.0), &was.1),
            "pod {name} was changed (resources, {ORIGINAL_RESOURCES_ANNOTATION})"
        );
    }
    assert_eq!(
        listed.items.len(),
        created.len(),
        "every pod of the corpus exists"
    );
    assert!(
        listed
            .items
            .iter()
            .all(|p| { p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") }),
        "every pod ran while the controller saw it"
    );
    let mut ctl = ctl;
    assert!(
        matches!(ctl.child.try_wait(), Ok(None)),
        "the controller exited (see its log under {})",
        std::env::temp_dir().display()
    );
    assert!(ctl.ready(), "the controller is no longer Ready (/readyz)");
}

/// Offline: every case file parses, states a known outcome with what that outcome needs, and
/// is rewritten into the test's namespace under its own name.
#[test]
fn every_case_file_states_a_checkable_outcome() {
    let cases = load_cases("t-bad-offline");
    assert!(cases.len() >= 50, "the corpus has {} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    for c in &cases {
        let docs: Vec<Value> = serde_saphyr::from_multiple(&c.manifest)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", c.file));
        assert!(!docs.is_empty(), "{}", c.file);
        for d in &docs {
            assert_eq!(
                d["metadata"]["namespace"], "t-bad-offline",
                "{}: every object is in the test's namespace",
                c.file
            );
            let name = d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(
                name.len() <= 63 && !name.is_empty() && name != "bad",
                "{}: object name {name:?}",
                c.file
            );
            assert!(
                names.insert(format!("{}/{name}", d["kind"])),
                "{}: {name} is also the name of another case's object",
                c.file
            );
        }
        match c.outcome.as_str() {
            "refused" => assert!(
                !c.field.is_empty() || c.expect.is_some(),
                "{}: a refused case names the field (`# field:` or `# expect:`)",
                c.file
            ),
            "ready-false" => assert!(
                !c.message.is_empty() || c.reason.is_some(),
                "{}: `# message:` or `# reason:`",
                c.file
            ),
            "pruned" => assert!(c.pruned.is_some(), "{}: `# pruned:`", c.file),
            "ready-true" | "unchanged" => {}
            "conflict" => assert!(c.objects.len() >= 2, "{}: `# object:` lists both", c.file),
            "bad-pod-event" => assert!(c.expect.is_some(), "{}: `# expect:`", c.file),
            other => panic!("{}: unknown outcome {other:?}", c.file),
        }
    }
}
