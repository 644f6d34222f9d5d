//! The agent's journal: what every cgroup it changed held before its first change, kept on the
//! host (a small JSON file under a hostPath, by default
//! `/var/lib/burst-scaler/agent/<node>.json`) so that a restarted agent — after a crash, a
//! SIGKILL, an upgrade, or with the API server unreachable — can put every cgroup back exactly
//! as the kubelet left it, without asking the API server anything.
//!
//! Write-ahead: an entry is saved (atomically: a temporary file, fsync, rename) *before* the
//! first write to its cgroup, and removed only after the cgroup was restored or is gone. A
//! crash between the two leaves an entry whose cgroup still holds its original values;
//! restoring it is a no-op.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cgroup::CpuLimits;

/// Journal format version.
pub const VERSION: u32 = 1;

/// Everything the agent has changed on its node, by pod UID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub version: u32,
    pub node: String,
    #[serde(default)]
    pub pods: BTreeMap<String, PodEntry>,
}

/// A pod the agent changed: its pod-level cgroup and the containers it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodEntry {
    /// `namespace/name` (for messages).
    pub pod: String,
    /// The pod-level cgroup, relative to the hierarchy roots.
    pub cgroup: PathBuf,
    /// What the pod-level cgroup held before the first change.
    pub original: Saved,
    /// By container ID (a restarted container is a new ID and a new cgroup).
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerEntry>,
}

/// A container the agent changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEntry {
    pub name: String,
    pub cgroup: PathBuf,
    pub original: Saved,
}

/// A cgroup's CPU settings as read ([`CpuLimits`], serialisable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    /// `None` = unlimited.
    pub quota_us: Option<u64>,
    pub period_us: u64,
    pub shares: u64,
    /// cgroup v2 only: the raw `cpu.weight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
}

impl From<CpuLimits> for Saved {
    fn from(l: CpuLimits) -> Saved {
        Saved {
            quota_us: l.quota_us,
            period_us: l.period_us,
            shares: l.shares,
            weight: l.weight,
        }
    }
}

impl From<Saved> for CpuLimits {
    fn from(s: Saved) -> CpuLimits {
        CpuLimits {
            quota_us: s.quota_us,
            period_us: s.period_us,
            shares: s.shares,
            weight: s.weight,
        }
    }
}

/// Why a journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("read {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not a burst-scaler agent journal: {why}", .path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("write {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
}

impl Journal {
    pub fn new(node: &str) -> Journal {
        Journal {
            version: VERSION,
            node: node.to_string(),
            pods: BTreeMap::new(),
        }
    }

    /// Reads the journal at `path`; a missing file is an empty journal for `node`.
    pub fn load(path: &Path, node: &str) -> Result<Journal, JournalError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Journal::new(node)),
            Err(source) => {
                return Err(JournalError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let j: Journal = serde_json::from_str(&text).map_err(|e| JournalError::Corrupt {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        if j.version != VERSION {
            return Err(JournalError::Corrupt {
                path: path.to_path_buf(),
                why: format!("version {} (this agent reads {VERSION})", j.version),
            });
        }
        if j.node != node {
            return Err(JournalError::Corrupt {
                path: path.to_path_buf(),
                why: format!("written for node {:?}, this is {node:?}", j.node),
            });
        }
        Ok(j)
    }

    /// Saves atomically: a temporary file next to `path`, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), JournalError> {
        let werr = |source| JournalError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(werr)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).map_err(|e| werr(io::Error::other(e)))?;
        let mut f = fs::File::create(&tmp).map_err(werr)?;
        f.write_all(&text).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        fs::rename(&tmp, path).map_err(werr)
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(q: Option<u64>, s: u64) -> Saved {
        Saved {
            quota_us: q,
            period_us: 100_000,
            shares: s,
            weight: None,
        }
    }

    #[test]
    fn saves_and_loads_exactly_and_refuses_other_nodes_and_garbage() {
        let dir = std::env::temp_dir().join(format!("bsc-journal-{}", std::process::id()));
        let path = dir.join("node-1.json");
        let mut j = Journal::new("node-1");
        j.pods.insert(
            "uid-1".into(),
            PodEntry {
                pod: "default/web".into(),
                cgroup: "kubepods/burstable/poduid-1".into(),
                original: saved(Some(100_000), 102),
                containers: [(
                    "containerd://abc".to_string(),
                    ContainerEntry {
                        name: "web".into(),
                        cgroup: "kubepods/burstable/poduid-1/abc".into(),
                        original: saved(None, 102),
                    },
                )]
                .into(),
            },
        );
        j.save(&path).expect("save");
        assert_eq!(Journal::load(&path, "node-1").expect("load"), j);
        let other = Journal::load(&path, "node-2").expect_err("other node");
        assert!(other.to_string().contains("written for node"), "{other}");
        fs::write(&path, "{not json").expect("write");
        let bad = Journal::load(&path, "node-1").expect_err("garbage");
        assert!(
            bad.to_string().contains("not a burst-scaler agent journal"),
            "{bad}"
        );
        assert!(
            Journal::load(&dir.join("missing.json"), "node-1")
                .expect("missing is empty")
                .is_empty()
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
