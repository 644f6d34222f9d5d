//! Containers pinned to exclusive CPUs by the kubelet's static CPU manager policy, from its
//! checkpoint file (normally `/var/lib/kubelet/cpu_manager_state`).
//!
//! The format (kubelet `pkg/kubelet/cm/cpumanager/state/checkpoint.go`, `CPUManagerCheckpoint`,
//! "v2", written by every kubelet since 1.18):
//! `{"policyName":"static","defaultCpuSet":"0,3","entries":{"<podUID>":{"<container>":"1-2"}},
//! "checksum":…}`. `entries` lists only exclusive assignments (Guaranteed pods with integer
//! CPU requests). The checksum (an FNV hash of Go's formatting of the struct) is not verified;
//! the kubelet writes the file atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;

use serde::Deserialize;

use super::CgroupError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Checkpoint {
    policy_name: String,
    #[serde(default)]
    entries: BTreeMap<String, serde_json::Value>,
}

/// The set of (pod UID, container name) that have exclusive CPUs. A missing file or the `none`
/// policy give an empty set; a file that is not a checkpoint, or the pre-1.18 format (entries
/// keyed by container ID, which names no pod), is an error naming the file.
pub fn pinned_containers(state_file: &Path) -> Result<BTreeSet<(String, String)>, CgroupError> {
    let text = match fs::read_to_string(state_file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(CgroupError::read(state_file, e)),
    };
    let err = |why: String| CgroupError::CpuManagerState {
        path: state_file.to_path_buf(),
        why,
    };
    let checkpoint: Checkpoint = serde_json::from_str(&text)
        .map_err(|e| err(format!("not a CPU manager checkpoint: {e}")))?;
    if checkpoint.policy_name == "none" {
        return Ok(BTreeSet::new());
    }
    let mut pinned = BTreeSet::new();
    for (pod, containers) in checkpoint.entries {
        let serde_json::Value::Object(containers) = containers else {
            return Err(err(format!(
                "entry {pod:?} is not a map of container names to CPU sets (a pre-1.18 \
                 checkpoint keyed by container ID?)"
            )));
        };
        for (container, cpus) in containers {
            if !cpus.is_string() {
                return Err(err(format!(
                    "entry {pod:?}/{container:?} is {cpus}, not a CPU set string"
                )));
            }
            pinned.insert((pod.clone(), container));
        }
    }
    Ok(pinned)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Tree;
    use super::*;

    #[test]
    fn static_policy_entries() {
        let t = Tree::empty("pinned-static");
        let f = t.file(
            "cpu_manager_state",
            r#"{"policyName":"static","defaultCpuSet":"0,3","entries":{"uid-a":{"app":"1","sidecar":"2"},"uid-b":{"db":"1-2"}},"checksum":1234}"#,
        );
        let set = pinned_containers(&f).expect("parses");
        let want: BTreeSet<(String, String)> =
            [("uid-a", "app"), ("uid-a", "sidecar"), ("uid-b", "db")]
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect();
        assert_eq!(set, want);
    }

    #[test]
    fn none_policy_missing_file_and_no_entries() {
        let t = Tree::empty("pinned-none");
        let f = t.file(
            "cpu_manager_state",
            r#"{"policyName":"none","defaultCpuSet":"","checksum":1353318690}"#,
        );
        assert!(pinned_containers(&f).expect("parses").is_empty());
        let f = t.file(
            "static-empty",
            r#"{"policyName":"static","defaultCpuSet":"0-1","checksum":1}"#,
        );
        assert!(pinned_containers(&f).expect("parses").is_empty());
        let missing = t.root().join("absent");
        assert!(pinned_containers(&missing).expect("no file").is_empty());
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        let t = Tree::empty("pinned-bad");
        for (name, text, why) in [
            ("empty", "", "not a CPU manager checkpoint"),
            ("json-garbage", "{", "not a CPU manager checkpoint"),
            ("no-policy", r#"{"entries":{}}"#, "policyName"),
            (
                "v1-format",
                r#"{"policyName":"static","defaultCpuSet":"0","entries":{"cid":"1"}}"#,
                "pre-1.18",
            ),
            (
                "bad-cpuset",
                r#"{"policyName":"static","defaultCpuSet":"0","entries":{"u":{"c":1}}}"#,
                "not a CPU set string",
            ),
        ] {
            let f = t.file(name, text);
            let e = pinned_containers(&f).expect_err(name).to_string();
            assert!(e.contains(&f.display().to_string()), "{name}: {e}");
            assert!(e.contains(why), "{name}: {e}");
        }
        let dir = t.dir("a-directory");
        let e = pinned_containers(&dir).expect_err("directory");
        assert!(e.to_string().contains("a-directory"), "{e}");
    }
}
