//! The node agent (`burst-scaler agent`): governs the pods of its own node through their
//! cgroups, every second, on any Kubernetes version.
//!
//! - [`cgroup`]: the host's cgroups — layout detection (v1, v2, hybrid; cgroupfs and systemd
//!   drivers), counters (usage, CFS throttling, CPU pressure), limits, and ordered, read-back
//!   writes.

pub mod cgroup;
