//! Every Kubernetes API call the node agent makes, as RBAC (group, resource, verb). The Helm
//! chart's agent ClusterRole and Role must grant exactly these (`tests/chart.rs`). The agent
//! has **no** pod write permission: RBAC cannot restrict a pod PATCH to one node, and the
//! agent acts through cgroups only.

/// Cluster-wide permissions: (API group, resource, verbs).
pub const CLUSTER_RULES: &[(&str, &str, &[&str])] = &[
    // Reflector: every BurstScaler (which pods of this node are governed, and how).
    ("burstscaler.dev", "burstscalers", &["get", "list", "watch"]),
    // Its node's BurstScalerNode: server-side apply of the object and of its status.
    (
        "burstscaler.dev",
        "burstscalernodes",
        &["get", "create", "patch"],
    ),
    ("burstscaler.dev", "burstscalernodes/status", &["patch"]),
    // Reflector with a field selector on spec.nodeName (RBAC cannot narrow it further).
    ("", "pods", &["get", "list", "watch"]),
    // Reflector on its own node (allocatable CPU; the owner of its BurstScalerNode).
    ("", "nodes", &["get", "list", "watch"]),
    // events.k8s.io Recorder (create, then patch for series).
    ("events.k8s.io", "events", &["create", "patch"]),
];

/// Permissions in the agent's namespace only: its per-node Lease.
pub const LEASE_RULES: &[(&str, &str, &[&str])] = &[(
    "coordination.k8s.io",
    "leases",
    &["get", "create", "update"],
)];
