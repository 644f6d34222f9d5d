//! The CRD is generated from the Rust types, committed, and enforces the same rules as
//! `validate()`. These tests check all three.

mod support;

use std::path::{Path, PathBuf};

use burst_scaler::api::{self, rules};
use burst_scaler::crdgen;
use serde_json::Value;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn yaml_to_json(s: &str) -> Value {
    serde_saphyr::from_str(s).expect("sample is YAML")
}

/// The CRD's openAPIV3Schema as JSON.
fn schema() -> Value {
    let crd = serde_json::to_value(crdgen::burst_scaler_crd()).expect("crd to json");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn committed_crd_matches_the_rust_types() {
    let generated = crdgen::crds_yaml().expect("yaml");
    let committed = read(&repo("crds/burstscaler.yaml"));
    assert!(
        committed == generated,
        "crds/burstscaler.yaml is stale: run `cargo run -- crd > crds/burstscaler.yaml`"
    );
    // The chart ships the same file (Helm installs CRDs from the chart's crds/ directory).
    let chart = repo("charts/burst-scaler/crds/burstscaler.yaml");
    if chart.exists() {
        assert!(
            read(&chart) == generated,
            "charts/burst-scaler/crds/burstscaler.yaml is stale: run `cargo run -- crd > charts/burst-scaler/crds/burstscaler.yaml`"
        );
    }
}

/// `batch: null` and `latencySensitive: null` are dropped by the API server (non-nullable
/// nulls are pruned since Kubernetes 1.20) instead of reaching the CEL rules as present blocks.
#[test]
fn optional_policy_blocks_are_not_nullable() {
    let s = schema();
    for block in ["batch", "latencySensitive"] {
        let node = &s["properties"]["spec"]["properties"][block];
        assert!(node.is_object(), "{block}");
        assert_eq!(
            node.get("nullable"),
            None,
            "spec.{block} must not be nullable"
        );
    }
}

#[test]
fn committed_crd_is_a_valid_crd_document() {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&read(&repo("crds/burstscaler.yaml"))).expect("yaml");
    assert_eq!(docs.len(), 2);
    assert!(docs.iter().all(|d| d["kind"] == "CustomResourceDefinition"));
    assert_eq!(
        docs[1]["metadata"]["name"],
        "burstscalernodes.burstscaler.dev"
    );
    assert_eq!(docs[1]["spec"]["scope"], "Cluster");
    assert_eq!(docs[0]["metadata"]["name"], "burstscalers.burstscaler.dev");
    let v = &docs[0]["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert_eq!(v["subresources"]["status"], serde_json::json!({}));
    assert_eq!(docs[0]["spec"]["names"]["shortNames"][0], "bsc");
}

/// What the API server does before validating (Kubernetes ≥ 1.20): a `null` of a field the
/// schema does not mark `nullable` is dropped (then defaulted, as absent).
fn drop_non_nullable_nulls(object: &Value, schema: &Value) -> Value {
    match object {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| {
                    !(v.is_null() && schema["properties"][k.as_str()]["nullable"] != true)
                })
                .map(|(k, v)| {
                    (
                        k.clone(),
                        drop_non_nullable_nulls(v, &schema["properties"][k.as_str()]),
                    )
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| drop_non_nullable_nulls(v, &schema["items"]))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Errors the API server would report from the structural schema (types, enums, ranges,
/// patterns), approximated with a JSON-schema validator, as dotted field paths.
fn schema_errors(object: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&schema()).expect("schema compiles");
    let object = &drop_non_nullable_nulls(object, &schema());
    validator
        .iter_errors(object)
        .map(|e| {
            e.instance_path()
                .to_string()
                .trim_start_matches('/')
                .split('/')
                .fold(String::new(), |mut acc, seg| {
                    if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
                        acc.push_str(&format!("[{seg}]"));
                    } else {
                        if !acc.is_empty() {
                            acc.push('.');
                        }
                        acc.push_str(seg);
                    }
                    acc
                })
        })
        .collect()
}

/// Messages of the CRD's CEL rules that fail on `object`, evaluated by a real CEL
/// implementation of the Kubernetes libraries (kube-cel), after schema defaulting.
fn cel_errors(object: &Value) -> Vec<String> {
    let object = &drop_non_nullable_nulls(object, &schema());
    match kube_cel::Validator::new().validate(&schema(), object, None) {
        Ok(()) => vec![],
        Err(errs) => errs.iter().map(|e| e.message.clone()).collect(),
    }
}

struct Sample {
    name: String,
    layer: String,
    field: String,
    message: String,
    cel_message: Option<String>,
    /// What a Kubernetes 1.20 server (no CEL) does with it: `refused` or `ready-false`
    /// (`tests/bad_input.rs` checks it on the local cluster).
    on_1_20: String,
    /// What a CEL-capable server (≥ 1.25) does with it.
    on_1_25: String,
    /// Why a sample behaves otherwise than its layer says (`# why:`).
    why: Option<String>,
    object: Value,
}

fn invalid_samples() -> Vec<Sample> {
    let mut out = vec![];
    let mut paths: Vec<_> = std::fs::read_dir(repo("tests/invalid"))
        .expect("tests/invalid")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for p in paths {
        let text = read(&p);
        let header = |key: &str| support::header(&text, key);
        let need = |key: &str| {
            header(key).unwrap_or_else(|| panic!("{}: missing `# {key}:` header", p.display()))
        };
        out.push(Sample {
            name: p.file_name().expect("name").to_string_lossy().into_owned(),
            layer: need("layer"),
            field: need("field"),
            message: need("message"),
            cel_message: header("cel-message"),
            on_1_20: need("on-1.20"),
            on_1_25: need("on-1.25+"),
            why: header("why"),
            object: yaml_to_json(&text),
        });
    }
    assert!(
        out.len() >= 10,
        "expected the invalid samples under tests/invalid"
    );
    out
}

#[test]
fn every_invalid_sample_is_rejected_by_validate_with_its_message() {
    for s in invalid_samples() {
        let errs = api::parse_and_validate(s.object.clone()).expect_err(&format!(
            "{}: validate() accepted an invalid object",
            s.name
        ));
        assert!(
            errs.iter()
                .any(|e| e.message == s.message && e.field == s.field),
            "{}: expected `{}: {}`, got {:?}",
            s.name,
            s.field,
            s.message,
            errs.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
}

#[test]
fn every_invalid_sample_is_rejected_by_the_crd() {
    for s in invalid_samples() {
        match s.layer.as_str() {
            "cel" => {
                let want = s.cel_message.as_deref().unwrap_or(&s.message);
                let got = cel_errors(&s.object);
                assert!(
                    got.iter().any(|m| m == want),
                    "{}: the CRD's CEL rules should say {want:?}, said {got:?}",
                    s.name
                );
            }
            "schema" => {
                let got = schema_errors(&s.object);
                assert!(
                    got.contains(&s.field),
                    "{}: the CRD schema should reject {}, rejected {got:?}",
                    s.name,
                    s.field
                );
            }
            "listtype" => {
                // `x-kubernetes-list-type: set` makes the API server refuse duplicates.
                let mut node = schema();
                for seg in s.field.split('[').next().expect("field").split('.') {
                    node = node["properties"][seg].clone();
                }
                assert_eq!(node["x-kubernetes-list-type"], "set", "{}", s.name);
            }
            "controller" => {
                // Only validate() checks it (the CRD's schema and rules accept it): every
                // server stores it and the controller reports it as Ready=False.
                assert_eq!(schema_errors(&s.object), Vec::<String>::new(), "{}", s.name);
                assert_eq!(cel_errors(&s.object), Vec::<String>::new(), "{}", s.name);
            }
            other => panic!("{}: unknown layer {other:?}", s.name),
        }
    }
}

/// The stated outcome on each kind of server follows from the layer that refuses the sample:
/// the structural schema (types, ranges, patterns, list types) is enforced by every server;
/// CEL rules only from Kubernetes 1.25 (before, the controller reports `Ready=False`); what
/// only validate() checks is stored everywhere and reported as `Ready=False`.
#[test]
fn every_invalid_sample_states_its_outcome_on_each_server() {
    let samples = invalid_samples();
    assert!(
        samples.len() >= 50,
        "the bad-input corpus (issue 15) has at least 50 samples under tests/invalid, got {}",
        samples.len()
    );
    for s in samples {
        let want = match s.layer.as_str() {
            "schema" | "listtype" => ("refused", "refused"),
            "cel" => ("ready-false", "refused"),
            "controller" => ("ready-false", "ready-false"),
            other => panic!("{}: unknown layer {other:?}", s.name),
        };
        // The 1.20 API server refuses a few inputs the CRD accepts (an empty string as a
        // label key, as "null"): allowed when the sample says why.
        let quirk = s.layer == "controller" && s.on_1_20 == "refused" && s.why.is_some();
        assert_eq!(
            (
                if quirk { want.0 } else { s.on_1_20.as_str() },
                s.on_1_25.as_str()
            ),
            want,
            "{}: `# on-1.20:` / `# on-1.25+:` do not follow from `# layer: {}`",
            s.name,
            s.layer
        );
    }
}

#[test]
fn every_cel_rule_has_an_invalid_sample() {
    let samples = invalid_samples();
    for rule in rules::ALL {
        assert!(
            samples
                .iter()
                .any(|s| s.layer == "cel" && s.message == rule.message),
            "no sample under tests/invalid exercises the rule {:?}",
            rule.message
        );
    }
}

#[test]
fn examples_are_accepted_by_every_layer() {
    let dir = repo("crds/examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("crds/examples") {
        let p = e.expect("entry").path();
        let obj = yaml_to_json(&read(&p));
        if let Err(errs) = api::parse_and_validate(obj.clone()) {
            panic!("{}: validate() refused it: {errs:?}", p.display());
        }
        assert_eq!(schema_errors(&obj), Vec::<String>::new(), "{}", p.display());
        assert_eq!(cel_errors(&obj), Vec::<String>::new(), "{}", p.display());
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn defaults_are_explicit_in_the_schema() {
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(spec["mode"]["default"], "Recommend");
    assert_eq!(
        spec["behavior"]["default"]["scaleUp"]["stabilizationSeconds"],
        0
    );
    assert_eq!(
        spec["behavior"]["default"]["scaleDown"]["stabilizationSeconds"],
        300
    );
    let ls = &spec["latencySensitive"]["properties"];
    assert_eq!(ls["targetUtilization"]["default"], 60);
    assert_eq!(ls["burstThreshold"]["default"], 85);
    assert_eq!(spec["recommendation"]["default"]["percentile"], 90);
}

#[test]
fn cel_and_validate_agree_on_boundaries() {
    // Edge values that must be accepted by both layers.
    let ok = serde_json::json!({
        "apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
        "metadata": {"name": "edge", "namespace": "default"},
        "spec": {
            "selector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            "role": "Batch",
            "cpu": {"min": 1, "max": "1000m"},
            "batch": {"floor": "1"},
        }
    });
    assert!(api::parse_and_validate(ok.clone()).is_ok());
    assert_eq!(cel_errors(&ok), Vec::<String>::new());
    assert_eq!(schema_errors(&ok), Vec::<String>::new());
}

/// Every optional field, set alone in an otherwise minimal BurstScaler, is accepted by the CRD
/// schema (no sibling becomes `Required`) and by `validate()`, and every field it did not set
/// keeps its own default (issue 17: `behavior: {scaleUp: {maxStepPercent: 50}}` was refused
/// with `spec.behavior.scaleUp.stabilizationSeconds: Required value`).
#[test]
fn every_optional_field_can_be_set_alone() {
    let ls = |extra: Value| {
        let mut spec = serde_json::json!({
            "selector": {"matchLabels": {"app": "web"}},
            "role": "LatencySensitive",
            "cpu": {"min": "100m", "max": "2"},
        });
        for (k, v) in extra.as_object().expect("object") {
            spec[k] = v.clone();
        }
        serde_json::json!({"apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
            "metadata": {"name": "x", "namespace": "default"}, "spec": spec})
    };
    let batch = |b: Value| {
        serde_json::json!({"apiVersion": "burstscaler.dev/v1alpha1", "kind": "BurstScaler",
            "metadata": {"name": "x", "namespace": "default"}, "spec": {
                "selector": {"matchLabels": {"app": "c"}}, "role": "Batch",
                "cpu": {"min": "100m", "max": "2"}, "batch": b}})
    };
    let cases = [
        ls(serde_json::json!({"behavior": {"scaleUp": {"maxStepPercent": 50}}})),
        ls(serde_json::json!({"behavior": {"scaleUp": {"stabilizationSeconds": 30}}})),
        ls(serde_json::json!({"behavior": {"scaleDown": {"maxStepPercent": 10}}})),
        ls(serde_json::json!({"behavior": {"scaleDown": {"stabilizationSeconds": 60}}})),
        ls(serde_json::json!({"behavior": {}})),
        ls(serde_json::json!({"latencySensitive": {"targetUtilization": 50}})),
        ls(serde_json::json!({"latencySensitive": {"burstThreshold": 90}})),
        ls(serde_json::json!({"latencySensitive": {"burstSamples": 2}})),
        ls(serde_json::json!({"latencySensitive": {"requestPolicy": "LimitOnly"}})),
        ls(serde_json::json!({"latencySensitive": {"signals": {"cpuPressurePercent": 20}}})),
        ls(serde_json::json!({"latencySensitive": {"signals": {"yieldPressurePercent": 60}}})),
        ls(serde_json::json!({"latencySensitive": {"signals": {"cpuPressurePercent": 50}}})),
        ls(serde_json::json!({"latencySensitive": {"signals": {"throttledPercent": 30}}})),
        ls(serde_json::json!({"latencySensitive": {"signals": {"forSeconds": 5}}})),
        ls(serde_json::json!({"recommendation": {"percentile": 95}})),
        ls(serde_json::json!({"recommendation": {"marginPercent": 5}})),
        ls(serde_json::json!({"recommendation": {"halfLifeSeconds": 600}})),
        ls(serde_json::json!({"containers": ["web"]})),
        ls(serde_json::json!({"mode": "Auto"})),
        batch(serde_json::json!({"floor": "200m", "priority": 3})),
        batch(serde_json::json!({"floor": "200m", "borrow": {"enabled": true}})),
        batch(serde_json::json!({"floor": "200m", "borrow": {"headroomPercent": 20}})),
        batch(serde_json::json!({"floor": "200m", "borrow": {"stepPercent": 10}})),
    ];
    for obj in cases {
        let errs = schema_errors(&obj);
        assert!(errs.is_empty(), "schema refused {}: {errs:?}", obj["spec"]);
        let v = api::parse_and_validate(obj.clone())
            .unwrap_or_else(|e| panic!("validate refused {}: {e:?}", obj["spec"]));
        let b = &v.behavior;
        let set = |path: &str| obj["spec"].pointer(path).is_some();
        if !set("/behavior/scaleUp/stabilizationSeconds") {
            assert_eq!(b.scale_up.stabilization_seconds, 0);
        }
        if !set("/behavior/scaleUp/maxStepPercent") {
            assert_eq!(b.scale_up.max_step_percent, 100);
        }
        if !set("/behavior/scaleDown/stabilizationSeconds") {
            assert_eq!(b.scale_down.stabilization_seconds, 300);
        }
        if !set("/behavior/scaleDown/maxStepPercent") {
            assert_eq!(b.scale_down.max_step_percent, 25);
        }
        if !set("/latencySensitive/signals/forSeconds") {
            assert_eq!(v.latency.signals.for_seconds, 3);
        }
        if !set("/latencySensitive/signals/yieldPressurePercent") {
            assert_eq!(v.latency.signals.yield_pressure_percent, 40);
        }
        if !set("/batch/borrow/headroomPercent") {
            assert_eq!(v.borrow.headroom_percent, 10);
        }
    }
}
