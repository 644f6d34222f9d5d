//! The validation rules of a BurstScaler, written once.
//!
//! Each rule exists twice: as a CEL expression the API server evaluates
//! (`x-kubernetes-validations` in the CRD, Kubernetes ≥ 1.25) and as Rust code in
//! [`super::validate`], for API servers that do not run CEL. Both layers report the same
//! message, taken from this table, so a user sees the same words whichever layer caught them.

/// One cross-field rule: where it is attached in the schema, its CEL expression, and its message
/// (which names the field and states the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Dotted path of the schema node the rule is attached to (`self` in the CEL expression).
    pub path: &'static str,
    pub cel: &'static str,
    pub message: &'static str,
}

pub const SELECTOR_NOT_EMPTY: Rule = Rule {
    path: "spec",
    cel: "(has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || (has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)",
    message: "spec.selector must not be empty: set matchLabels or matchExpressions (an empty selector would govern every pod in the namespace)",
};

pub const BATCH_NEEDS_FLOOR: Rule = Rule {
    path: "spec",
    cel: "self.role != 'Batch' || has(self.batch)",
    message: "spec.batch.floor is required when spec.role is Batch: it is the CPU limit below which a batch pod is never throttled",
};

pub const BATCH_ONLY_FOR_BATCH: Rule = Rule {
    path: "spec",
    cel: "self.role == 'Batch' || !has(self.batch)",
    message: "spec.batch is only allowed when spec.role is Batch",
};

pub const LATENCY_ONLY_FOR_LATENCY: Rule = Rule {
    path: "spec",
    cel: "self.role == 'LatencySensitive' || !has(self.latencySensitive)",
    message: "spec.latencySensitive is only allowed when spec.role is LatencySensitive",
};

pub const FLOOR_WITHIN_BOUNDS: Rule = Rule {
    path: "spec",
    cel: "!has(self.batch) || (quantity(string(self.batch.floor)).compareTo(quantity(string(self.cpu.min))) >= 0 && quantity(string(self.batch.floor)).compareTo(quantity(string(self.cpu.max))) <= 0)",
    message: "spec.batch.floor must be between spec.cpu.min and spec.cpu.max",
};

pub const CPU_MIN_LE_MAX: Rule = Rule {
    path: "spec.cpu",
    cel: "quantity(string(self.min)).compareTo(quantity(string(self.max))) <= 0",
    message: "spec.cpu.min must be less than or equal to spec.cpu.max",
};

pub const CPU_MIN_POSITIVE: Rule = Rule {
    path: "spec.cpu",
    cel: "quantity(string(self.min)).isGreaterThan(quantity('0'))",
    message: "spec.cpu.min must be greater than 0 (a zero CPU limit means no limit at all)",
};

pub const TARGET_BELOW_BURST: Rule = Rule {
    path: "spec.latencySensitive",
    cel: "self.targetUtilization < self.burstThreshold",
    message: "spec.latencySensitive.targetUtilization must be lower than spec.latencySensitive.burstThreshold (otherwise every resize would itself count as a burst)",
};

/// Every rule, for the CRD tests.
pub const ALL: &[Rule] = &[
    SELECTOR_NOT_EMPTY,
    BATCH_NEEDS_FLOOR,
    BATCH_ONLY_FOR_BATCH,
    LATENCY_ONLY_FOR_LATENCY,
    FLOOR_WITHIN_BOUNDS,
    CPU_MIN_LE_MAX,
    CPU_MIN_POSITIVE,
    TARGET_BELOW_BURST,
];

/// The `x-kubernetes-validations` list for the schema node at `path`.
pub fn cel_for(path: &str) -> serde_json::Value {
    serde_json::Value::Array(
        ALL.iter()
            .filter(|r| r.path == path)
            .map(|r| serde_json::json!({"rule": r.cel, "message": r.message}))
            .collect(),
    )
}
