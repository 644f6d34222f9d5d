//! The node agent (`burst-scaler agent`, a DaemonSet): governs the pods of its own node through
//! their cgroups, every second, on any Kubernetes version — the same engine as the controller,
//! fed with node signals (CPU pressure, throttled periods) the metrics API cannot see.
//!
//! Pure in the middle, I/O at the edges:
//! - [`select`]: which pods of this node are governed, by which BurstScaler (pure).
//! - [`signals`]: cgroup counters → engine samples with node signals, and usage histograms
//!   (pure).
//! - [`plan`]: one tick — engine input, [`crate::engine::decide`], the cgroup writes and
//!   restores, the report (pure).
//! - [`values`]: engine values ⇄ cgroup settings, and the safety rules on what is written
//!   (pure).
//! - [`report`]: the node's `BurstScalerNode` status and the Event rate limit (pure).
//! - [`journal`]: what every changed cgroup held before, on the host, for restores after a
//!   crash.
//! - [`lease`]: the per-node Lease (one decider per node).
//! - [`cgroup`]: the host's cgroups — layout detection (v1, v2, hybrid; cgroupfs and systemd
//!   drivers), counters, limits, and ordered, read-back writes.
//! - [`run`]: the I/O shell (watches, the tick loop, the reporter, shutdown).
//! - [`metrics`], [`rbac`]: its Prometheus metrics and HTTP endpoints; the API calls it makes.

pub mod cgroup;
pub mod journal;
pub mod lease;
pub mod metrics;
pub mod plan;
pub mod rbac;
pub mod report;
pub mod run;
pub mod select;
pub mod signals;
pub mod values;

pub use run::run;
