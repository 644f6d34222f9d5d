//! `burst-scaler explain pod NAME` / `explain bsc NAME` (also the kubectl plugin
//! `kubectl burstscaler`): why a pod has the CPU it has — who governs it, with which actuator,
//! what is in force against its spec and the recorded originals, the last decision and its
//! reason, and what the deciding component's newest pass decided (what happens next).
//!
//! - [`verdict`]: the deciders' newest verdicts, served at `/decisions` by the controller and
//!   every node agent.
//! - [`model`] (pure): facts → explanation → text.
//! - [`fetch`]: reads the facts from the cluster (read-only).

pub mod fetch;
pub mod model;
pub mod verdict;
