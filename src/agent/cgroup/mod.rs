//! The host's cgroups, as the node agent sees them: where the kubelet put each pod and
//! container, what they consume, what is enforced, and ordered, read-back writes.
//!
//! # Hierarchies
//!
//! - **cgroup v1** ([`Hierarchy::V1`]): every controller is its own mount under the cgroup root
//!   (normally `/sys/fs/cgroup`). The `cpu` controller is at `cpu/` — or co-mounted with
//!   `cpuacct` as `cpu,cpuacct/` (then `cpu/` and `cpuacct/` are usually symlinks to it). The
//!   files used here:
//!   - `cpu.cfs_quota_us`: CPU time (µs) the group may use per period, summed over all CPUs;
//!     `-1` = unlimited. The kernel refuses (`EINVAL`) a quota below 1000 µs, below
//!     `cpu.cfs_burst_us`, or — v1 only — above the quota of any limited ancestor (compared per
//!     period), and refuses to lower an ancestor's quota below a child's.
//!   - `cpu.cfs_period_us`: the enforcement period (kubelet: 100 000 µs). Never written here.
//!   - `cpu.shares`: relative weight among siblings when the CPU is contended (2–262 144; the
//!     kernel silently clamps values outside that range, so they are refused before writing).
//!   - `cpu.stat`: `nr_periods` (periods in which the group ran with a quota), `nr_throttled`
//!     (periods in which it hit the quota), `throttled_time` (ns spent throttled).
//!   - `cpuacct.usage` (cpuacct controller: its own mount, or the co-mounted directory): CPU time
//!     used, ns, cumulative, including descendants.
//!   - `tasks`: the thread IDs in this cgroup (not its descendants).
//! - **cgroup v2** ([`Hierarchy::V2`]): one unified mount at the root; `cgroup.controllers`
//!   present at the root. Files: `cpu.max` (`"<quota|max> <period>"`), `cpu.weight` (1–10 000,
//!   converted to and from v1 shares exactly as the kubelet does, see [`shares_to_weight`]),
//!   `cpu.stat` (`usage_usec`, and with the cpu controller enabled `nr_periods`,
//!   `nr_throttled`, `throttled_usec`), `cpu.pressure`, `cgroup.threads`. A child's quota above
//!   its parent's is accepted on v2 (the parent's simply also applies).
//! - **hybrid**: v1 controllers plus an unified hierarchy at `unified/` with no controllers
//!   bound (systemd's "hybrid" mode, and this project's test machine). Reported as
//!   [`Hierarchy::V1`]; what it adds is **PSI**: every cgroup of the unified hierarchy has
//!   `cpu.pressure` whether or not a controller is bound, and the runtimes create every pod and
//!   container cgroup there too, at the same relative path — so per-pod CPU pressure is
//!   readable on v1 hosts.
//!
//! `cpu.pressure` (PSI, kernel ≥ 4.20 with `CONFIG_PSI`, not booted with `psi=0`):
//! `some avg10=… avg60=… avg300=… total=<µs>` — `total` is the cumulative time during which at
//! least one task of the cgroup was runnable but not running (waiting for a CPU, or throttled
//! by a quota). Where it is not readable (older kernels; kernels built with
//! `CONFIG_PSI_DEFAULT_DISABLED` and booted without `psi=1` answer `EOPNOTSUPP`), the per-thread
//! run-queue wait from `/proc/<tid>/schedstat` stands in ([`task_waits`], [`wait_share`]).
//!
//! # Drivers (how the kubelet names pod cgroups)
//!
//! With `cgroupDriver: cgroupfs`: `kubepods/pod<UID>` (Guaranteed), `kubepods/burstable/pod<UID>`,
//! `kubepods/besteffort/pod<UID>`; containers `<pod>/<ID>` (containerd, docker) or
//! `<pod>/crio-<ID>` (CRI-O). With `cgroupDriver: systemd`: slices named by joining the path
//! with `-` and the UID's `-` replaced by `_`
//! (`kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID_>.slice`), containers
//! `cri-containerd-<ID>.scope`, `crio-<ID>.scope`, `docker-<ID>.scope`. See [`Layout`].
//!
//! # Writing
//!
//! [`apply`] writes a pod's pod-level setting and its containers' settings in the order v1
//! accepts (pod-level quota first when it grows, last when it shrinks), reads back every file,
//! and on the first failure stops and reports the file and everything already in force. It
//! never rolls back on its own: a half-applied change is reported, not hidden. Keep the
//! pod-level quota at or above what the pod spec's containers need — a runtime restarting a
//! container writes the spec's quota into the new container cgroup and fails (`EINVAL`) below
//! a lower pod-level quota.
//!
//! # Modules
//!
//! - [`parse`]: the text formats of the files above (pure; also used by the experiments).
//! - `layout`: [`Layout`] (detection, pod and container paths) and [`Cgroup`].
//! - `read`: [`Counters`] and [`CpuLimits`] of one cgroup.
//! - `signal`: [`delta`] between two readings, and the schedstat fallback ([`task_wait_ns`]).
//! - `convert`: the kubelet's value mappings ([`quota_for`], [`shares_for`], weights, `cpu.max`).
//! - `write`: [`Setting`] and [`apply`].
//! - `pinned`: [`pinned_containers`] from the kubelet's CPU manager checkpoint.

use std::io;
use std::path::{Path, PathBuf};

mod convert;
mod layout;
mod pinned;
mod read;
mod signal;
mod write;

pub mod parse;

#[cfg(test)]
pub(crate) mod fixture;

pub use convert::{
    DEFAULT_PERIOD_US, MAX_SHARES, MAX_WEIGHT, MIN_QUOTA_US, MIN_SHARES, MIN_WEIGHT, Quota,
    cpu_max_text, millicores_for_quota, quota_for, shares_for, shares_to_weight, weight_to_shares,
};
pub use layout::{Cgroup, Driver, Hierarchy, Layout, Runtime};
pub use pinned::pinned_containers;
pub use read::{Counters, CpuLimits};
pub use signal::{Delta, TaskWaits, ThreadSample, delta, task_wait_ns, task_waits, wait_share};
pub use write::{Applied, Setting, Written, apply};

/// What went wrong, always naming the file (or ID) involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No usable cgroup hierarchy under the root given to [`Layout::detect`].
    #[error("cgroup layout under {}: {why}", .root.display())]
    Detect { root: PathBuf, why: String },
    /// A cgroup (or `/proc`) file could not be read.
    #[error("read {}: {}{}", .path.display(), io_text(.source), read_hint(.source))]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file was read but its content is not what the kernel writes there.
    #[error("{}: {what}", .path.display())]
    Parse { path: PathBuf, what: String },
    /// The kernel refused a write.
    #[error("write {value} to {}: {}{}", .path.display(), io_text(.source), write_hint(.path, .source))]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A write succeeded but the file then held something else (the kernel clamped or
    /// rounded it, or someone else wrote in between).
    #[error("read-back of {} gave {got}, wrote {wrote}", .path.display())]
    ReadBack {
        path: PathBuf,
        wrote: String,
        got: String,
    },
    /// A value refused before anything was written (the kernel would refuse or silently clamp
    /// it).
    #[error("refusing to write {value} to {}: {why}", .path.display())]
    Invalid {
        path: PathBuf,
        value: String,
        why: String,
    },
    /// A container status ID that names no cgroup this module knows.
    #[error("container ID {id:?}: {why}")]
    ContainerId { id: String, why: String },
    /// [`apply`] stopped at `failed`; `written` (in write order) is in force, nothing after it
    /// was touched, nothing was rolled back.
    #[error("{failed}; {}", written_text(.written))]
    Apply {
        failed: Box<CgroupError>,
        written: Vec<Written>,
    },
    /// The kubelet's CPU manager checkpoint could not be understood.
    #[error("CPU manager state {}: {why}", .path.display())]
    CpuManagerState { path: PathBuf, why: String },
}

impl CgroupError {
    pub(crate) fn read(path: &Path, source: io::Error) -> CgroupError {
        CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn parse(path: &Path, what: impl Into<String>) -> CgroupError {
        CgroupError::Parse {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    /// The OS error number behind this error (for [`CgroupError::Apply`], the failed step's).
    pub fn errno(&self) -> Option<i32> {
        match self {
            CgroupError::Read { source, .. } | CgroupError::Write { source, .. } => {
                source.raw_os_error()
            }
            CgroupError::Apply { failed, .. } => failed.errno(),
            _ => None,
        }
    }

    /// True when the cgroup is gone (`ENOENT`/`ENODEV`): the pod or container was removed
    /// while we looked — a normal event for an agent, not a fault.
    pub fn is_gone(&self) -> bool {
        matches!(self.errno(), Some(ENOENT) | Some(ENODEV))
    }

    /// What [`apply`] had written, and is in force, when it failed (empty for other errors,
    /// which happen before anything is written).
    pub fn written(&self) -> &[Written] {
        match self {
            CgroupError::Apply { written, .. } => written,
            _ => &[],
        }
    }
}

const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const ENODEV: i32 = 19;
const EINVAL: i32 = 22;
const EOPNOTSUPP: i32 = 95;

/// `"Invalid argument (EINVAL)"` rather than std's `"Invalid argument (os error 22)"`.
fn io_text(e: &io::Error) -> String {
    let text = e.to_string();
    let Some(code) = e.raw_os_error() else {
        return text;
    };
    let bare = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    match errno_name(code) {
        Some(name) => format!("{bare} ({name})"),
        None => format!("{bare} (errno {code})"),
    }
}

fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        5 => "EIO",
        7 => "E2BIG",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        28 => "ENOSPC",
        30 => "EROFS",
        34 => "ERANGE",
        95 => "EOPNOTSUPP",
        _ => return None,
    })
}

fn read_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(ENOENT) | Some(ENODEV) => ": the cgroup or task is gone",
        Some(EOPNOTSUPP) => ": not supported by this kernel (PSI disabled?)",
        _ => "",
    }
}

fn write_hint(path: &Path, e: &io::Error) -> &'static str {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    match (e.raw_os_error(), file) {
        (Some(EINVAL), "cpu.cfs_quota_us" | "cpu.max") => {
            ": the kernel refuses a quota below 1000 us or below cpu.cfs_burst_us, and on cgroup \
             v1 a child's quota above a limited ancestor's (raise the pod level first, lower it \
             last)"
        }
        (Some(ENOENT) | Some(ENODEV), _) => ": the cgroup is gone (pod or container removed?)",
        _ => "",
    }
}

fn written_text(written: &[Written]) -> String {
    if written.is_empty() {
        return "nothing had been written".to_string();
    }
    let files: Vec<String> = written
        .iter()
        .map(|w| format!("{}={}", w.file.display(), w.after))
        .collect();
    format!("already in force (not rolled back): {}", files.join(", "))
}
