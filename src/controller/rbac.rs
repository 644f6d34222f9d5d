//! Every Kubernetes API call the controller makes, as RBAC (group, resource, verb). The Helm
//! chart's ClusterRole and leader-election Role must grant exactly these (`tests/chart.rs`).
//! Change this list whenever a new call is added to the controller.

/// Cluster-wide permissions: (API group, resource, verbs).
pub const CLUSTER_RULES: &[(&str, &str, &[&str])] = &[
    // Reflector (list/watch), finalizer add/remove (patch).
    (
        "burstscaler.dev",
        "burstscalers",
        &["get", "list", "watch", "patch"],
    ),
    // Status writes (merge patch on the status subresource).
    ("burstscaler.dev", "burstscalers/status", &["patch"]),
    // What the node agents report (folded into BurstScaler status).
    ("burstscaler.dev", "burstscalernodes", &["get", "list"]),
    // Setting the finalizer when OwnerReferencesPermissionEnforcement is on.
    ("burstscaler.dev", "burstscalers/finalizers", &["update"]),
    // Reflector; the original-resources annotation (merge patch).
    ("", "pods", &["get", "list", "watch", "patch"]),
    // In-place resize (Kubernetes ≥ 1.33).
    ("", "pods/resize", &["patch"]),
    // Reflector (allocatable CPU).
    ("", "nodes", &["get", "list", "watch"]),
    // Usage polling.
    ("metrics.k8s.io", "pods", &["get", "list"]),
    // Conflict detection: HPAs and the selectors of their targets.
    (
        "autoscaling",
        "horizontalpodautoscalers",
        &["get", "list", "watch"],
    ),
    ("apps", "deployments", &["get"]),
    ("apps", "replicasets", &["get"]),
    ("apps", "statefulsets", &["get"]),
    // events.k8s.io Recorder (create, then patch for series).
    ("events.k8s.io", "events", &["create", "patch"]),
];

/// Permissions in the release namespace only: leader election (kube-lease-manager: get,
/// create, patch) and reading the node agents' Leases (list), so that a node with a live agent
/// is never decided by the controller too.
pub const LEASE_RULES: &[(&str, &str, &[&str])] = &[(
    "coordination.k8s.io",
    "leases",
    &["get", "list", "create", "patch"],
)];
