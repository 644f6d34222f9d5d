//! burst-scaler: a Kubernetes operator that grows latency-sensitive pods in place when they burst
//! and throttles batch pods that would starve them, on each node.
//!
//! Layout (decision logic in the middle, I/O at the edges):
//! - [`agent`]: the node agent (cgroup signals and actuation on its own node).
//! - [`api`]: the `BurstScaler` custom resource, its validation rules and `validate()`.
//! - [`quantity`]: CPU quantities ⇄ millicores.
//! - [`engine`]: the pure decision engine (no client, no clock, no I/O).
//! - [`explain`]: `burst-scaler explain` (why a pod has its CPU) and the deciders' `/decisions`.
//! - [`replay`]: drives the engine from a recorded trace (`burst-scaler replay`).
//! - [`crdgen`]: CRD YAML generation (`burst-scaler crd`).
//! - [`cli`], [`telemetry`]: flags and logging for the binary.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod controller;
pub mod crdgen;
pub mod engine;
pub mod explain;
pub mod quantity;
pub mod replay;
pub mod telemetry;
pub mod usage;
