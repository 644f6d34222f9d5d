//! `validate()`: the Rust twin of the CRD's schema and CEL rules.
//!
//! API servers older than 1.25 ignore `x-kubernetes-validations`, so the controller validates
//! every BurstScaler itself before acting on it, and reports failures as a `Ready=False`
//! condition. The result of a successful validation is a [`ValidatedSpec`]: the same policy with
//! every quantity parsed, which is what the decision engine consumes.

use std::fmt;

use super::{
    Behavior, BorrowPolicy, BurstScalerSpec, LatencySensitivePolicy, Mode, RecommendationPolicy,
    Role, rules,
};
use crate::quantity::MilliCpu;

/// One problem with a BurstScaler: the field and what rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the offending field, e.g. `spec.cpu.min`.
    pub field: String,
    /// What is wrong. For cross-field rules this is exactly the CRD's CEL message.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A BurstScaler spec that passed validation, with quantities in millicores.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedSpec {
    pub role: Role,
    pub mode: Mode,
    /// Containers to govern; empty = all.
    pub containers: Vec<String>,
    pub min: MilliCpu,
    pub max: MilliCpu,
    /// For `Batch`: the throttle floor. For `LatencySensitive`: equal to `min`.
    pub floor: MilliCpu,
    /// For `Batch`: who yields first (lower first). 0 for `LatencySensitive`.
    pub priority: i32,
    /// For `Batch`: borrowing idle CPU (disabled for `LatencySensitive`).
    pub borrow: BorrowPolicy,
    pub latency: LatencySensitivePolicy,
    pub behavior: Behavior,
    pub recommendation: RecommendationPolicy,
}

impl ValidatedSpec {
    /// Whether container `name` is governed.
    pub fn governs(&self, name: &str) -> bool {
        self.containers.is_empty() || self.containers.iter().any(|c| c == name)
    }
}

/// Checks everything the CRD's schema and CEL rules check, and returns every problem at once
/// (so a user fixes them in one round), or the parsed spec.
pub fn validate(spec: &BurstScalerSpec) -> Result<ValidatedSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.to_string(),
            message,
        })
    };

    let labels = spec
        .selector
        .match_labels
        .as_ref()
        .is_some_and(|m| !m.is_empty());
    let exprs = spec
        .selector
        .match_expressions
        .as_ref()
        .is_some_and(|m| !m.is_empty());
    if !labels && !exprs {
        err("spec.selector", rules::SELECTOR_NOT_EMPTY.message.into());
    }
    // The API server checks label syntax for the selectors of its own types, not for a CRD's:
    // a key or value that no label can have would select nothing, silently.
    for (k, v) in spec.selector.match_labels.iter().flatten() {
        let field = format!("spec.selector.matchLabels.{k}");
        if let Err(why) = label_key(k) {
            err(&field, why);
        } else if let Err(why) = label_value(v) {
            err(&field, why);
        }
    }
    for (i, e) in spec.selector.match_expressions.iter().flatten().enumerate() {
        if let Err(why) = label_key(&e.key) {
            err(&format!("spec.selector.matchExpressions[{i}].key"), why);
        }
        for (j, v) in e.values.iter().flatten().enumerate() {
            if let Err(why) = label_value(v) {
                err(
                    &format!("spec.selector.matchExpressions[{i}].values[{j}]"),
                    why,
                );
            }
        }
        let field = format!("spec.selector.matchExpressions[{i}].operator");
        let needs_values = match e.operator.as_str() {
            "In" | "NotIn" => true,
            "Exists" | "DoesNotExist" => false,
            other => {
                err(
                    &field,
                    format!("{other:?} is not an operator: use In, NotIn, Exists or DoesNotExist"),
                );
                continue;
            }
        };
        let has_values = e.values.as_ref().is_some_and(|v| !v.is_empty());
        if needs_values != has_values {
            err(
                &format!("spec.selector.matchExpressions[{i}].values"),
                if needs_values {
                    format!("must not be empty when operator is {}", e.operator)
                } else {
                    format!("must be empty when operator is {}", e.operator)
                },
            );
        }
    }

    let mut seen = std::collections::HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let field = format!("spec.containers[{i}]");
        if !is_dns_label(&c.0) {
            err(
                &field,
                format!(
                    "{:?} is not a container name (a DNS-1123 label: lower-case letters, digits and '-', at most 63)",
                    c.0
                ),
            );
        }
        if !seen.insert(&c.0) {
            err(&field, format!("duplicate container name {:?}", c.0));
        }
    }
    if spec.containers.len() > 32 {
        err("spec.containers", "must have at most 32 items".into());
    }

    let mut parse = |field: &str, q: &crate::quantity::CpuQuantity| match q.millis() {
        Ok(m) => Some(m),
        Err(e) => {
            err(field, e.to_string());
            None
        }
    };
    let min = parse("spec.cpu.min", &spec.cpu.min);
    let max = parse("spec.cpu.max", &spec.cpu.max);
    let floor = spec
        .batch
        .as_ref()
        .and_then(|b| parse("spec.batch.floor", &b.floor));

    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            err("spec.cpu", rules::CPU_MIN_LE_MAX.message.into());
        }
        if let Some(floor) = floor
            && (floor < min || floor > max)
        {
            err("spec", rules::FLOOR_WITHIN_BOUNDS.message.into());
        }
    }
    if min == Some(MilliCpu::ZERO) {
        err("spec.cpu", rules::CPU_MIN_POSITIVE.message.into());
    }

    match (spec.role, spec.batch.is_some()) {
        (Role::Batch, false) => err("spec", rules::BATCH_NEEDS_FLOOR.message.into()),
        (Role::LatencySensitive, true) => err("spec", rules::BATCH_ONLY_FOR_BATCH.message.into()),
        _ => {}
    }
    if spec.role == Role::Batch && spec.latency_sensitive.is_some() {
        err("spec", rules::LATENCY_ONLY_FOR_LATENCY.message.into());
    }
    if let Some(b) = &spec.batch
        && !(-1000..=1000).contains(&b.priority)
    {
        err(
            "spec.batch.priority",
            "must be between -1000 and 1000".into(),
        );
    }

    if let Some(b) = &spec.batch {
        let (h, st) = (b.borrow.headroom_percent, b.borrow.step_percent);
        if h > 90 {
            err(
                "spec.batch.borrow.headroomPercent",
                format!("must be between 0 and 90 (got {h})"),
            );
        }
        if !(1..=1000).contains(&st) {
            err(
                "spec.batch.borrow.stepPercent",
                format!("must be between 1 and 1000 (got {st})"),
            );
        }
    }

    let latency = spec.latency_policy();
    let mut range = |field: &str, v: u32, lo: u32, hi: u32| {
        if v < lo || v > hi {
            err(field, format!("must be between {lo} and {hi} (got {v})"));
        }
    };
    if spec.latency_sensitive.is_some() {
        range(
            "spec.latencySensitive.targetUtilization",
            latency.target_utilization,
            1,
            100,
        );
        range(
            "spec.latencySensitive.burstThreshold",
            latency.burst_threshold,
            1,
            100,
        );
        range(
            "spec.latencySensitive.burstSamples",
            latency.burst_samples,
            1,
            20,
        );
        let sig = &latency.signals;
        range(
            "spec.latencySensitive.signals.cpuPressurePercent",
            sig.cpu_pressure_percent,
            1,
            100,
        );
        range(
            "spec.latencySensitive.signals.yieldPressurePercent",
            sig.yield_pressure_percent,
            1,
            100,
        );
        range(
            "spec.latencySensitive.signals.throttledPercent",
            sig.throttled_percent,
            1,
            100,
        );
        range(
            "spec.latencySensitive.signals.forSeconds",
            sig.for_seconds,
            1,
            600,
        );
    }
    let b = &spec.behavior;
    for (name, window, step) in [
        (
            "scaleUp",
            b.scale_up.stabilization_seconds,
            b.scale_up.max_step_percent,
        ),
        (
            "scaleDown",
            b.scale_down.stabilization_seconds,
            b.scale_down.max_step_percent,
        ),
    ] {
        range(
            &format!("spec.behavior.{name}.stabilizationSeconds"),
            window,
            0,
            3600,
        );
        range(
            &format!("spec.behavior.{name}.maxStepPercent"),
            step,
            1,
            1000,
        );
    }
    let rec = &spec.recommendation;
    range("spec.recommendation.percentile", rec.percentile, 1, 100);
    range(
        "spec.recommendation.marginPercent",
        rec.margin_percent,
        0,
        100,
    );
    range(
        "spec.recommendation.halfLifeSeconds",
        rec.half_life_seconds,
        60,
        604_800,
    );
    if spec.latency_sensitive.is_some() && latency.target_utilization >= latency.burst_threshold {
        err(
            "spec.latencySensitive",
            rules::TARGET_BELOW_BURST.message.into(),
        );
    }

    match (min, max) {
        (Some(min), Some(max)) if errors.is_empty() => Ok(ValidatedSpec {
            role: spec.role,
            mode: spec.mode,
            containers: spec.containers.iter().map(|c| c.0.clone()).collect(),
            min,
            max,
            floor: floor.unwrap_or(min),
            priority: spec.batch.as_ref().map_or(0, |b| b.priority),
            borrow: spec
                .batch
                .as_ref()
                .map(|b| b.borrow.clone())
                .unwrap_or_default(),
            latency,
            behavior: spec.behavior.clone(),
            recommendation: spec.recommendation.clone(),
        }),
        _ => Err(errors),
    }
}

/// A label name: at most 63 characters, alphanumerics with `-`, `_` or `.` inside.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key, as Kubernetes defines it: an optional DNS-1123 subdomain prefix and `/`, then a
/// name.
fn label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok =
        prefix.is_none_or(|p| p.len() <= 253 && !p.is_empty() && p.split('.').all(is_dns_label));
    if prefix_ok && is_label_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not a label key (an optional DNS prefix and '/', then a name of at most 63 letters, digits, '-', '_' or '.' that starts and ends with a letter or digit)"
        ))
    }
}

/// A label value: empty, or a label name.
fn label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_label_name(v) {
        Ok(())
    } else {
        Err(format!(
            "{v:?} is not a label value (at most 63 letters, digits, '-', '_' or '.' that starts and ends with a letter or digit)"
        ))
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Reads a BurstScaler from JSON (as the API server stores it), turning a document that does not
/// even fit the types into a [`FieldError`] that names the field, instead of failing opaquely.
pub fn parse(value: serde_json::Value) -> Result<super::BurstScaler, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        FieldError {
            field: if field == "." { String::new() } else { field },
            message: e.into_inner().to_string(),
        }
    })
}

/// [`parse`] then [`validate`]: everything wrong with a stored object, as field errors.
pub fn parse_and_validate(value: serde_json::Value) -> Result<ValidatedSpec, Vec<FieldError>> {
    let bsc = parse(value).map_err(|e| vec![e])?;
    validate(&bsc.spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(selector: serde_json::Value) -> BurstScalerSpec {
        serde_json::from_value(serde_json::json!({
            "selector": selector, "role": "LatencySensitive",
            "cpu": {"min": "100m", "max": "1"},
        }))
        .expect("spec")
    }

    fn fields(r: Result<ValidatedSpec, Vec<FieldError>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    /// Found by the bad-input corpus (issue 15): `{key: "", operator: Exists}` and label values
    /// no label can have passed validate() (the CRD's schema only says "string"), so the
    /// BurstScaler was Ready and selected nothing, silently.
    #[test]
    fn selectors_with_impossible_label_keys_or_values_are_refused() {
        for (sel, field) in [
            (
                serde_json::json!({"matchExpressions": [{"key": "", "operator": "Exists"}]}),
                "spec.selector.matchExpressions[0].key",
            ),
            (
                serde_json::json!({"matchExpressions": [{"operator": "Exists"}]}),
                "spec.selector.matchExpressions[0].key",
            ),
            (
                serde_json::json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "a b"]}]}),
                "spec.selector.matchExpressions[0].values[1]",
            ),
            (
                serde_json::json!({"matchLabels": {"app": "web server"}}),
                "spec.selector.matchLabels.app",
            ),
            (
                serde_json::json!({"matchLabels": {"": "web"}}),
                "spec.selector.matchLabels.",
            ),
            (
                serde_json::json!({"matchLabels": {"-app": "web"}}),
                "spec.selector.matchLabels.-app",
            ),
            (
                serde_json::json!({"matchLabels": {"Example.com/app": "web"}}),
                "spec.selector.matchLabels.Example.com/app",
            ),
        ] {
            let errs = fields(validate(&spec(sel.clone())));
            assert!(
                errs.iter().any(|e| e.starts_with(&format!("{field}: "))),
                "{sel}: expected an error on {field}, got {errs:?}"
            );
        }
    }

    #[test]
    fn selectors_with_the_label_syntax_kubernetes_accepts_pass() {
        for sel in [
            serde_json::json!({"matchLabels": {"app": "web"}}),
            serde_json::json!({"matchLabels": {"app.kubernetes.io/name": "web_1.a-b", "tier": ""}}),
            serde_json::json!({"matchLabels": {"example.com/App_Name": "A"}}),
            serde_json::json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x", "y.z"]}]}),
        ] {
            assert!(validate(&spec(sel.clone())).is_ok(), "{sel}");
        }
    }
}
