//! Where the kubelet's cgroups are on this host: [`Layout`] (detected once at start-up) and
//! [`Cgroup`] (one pod or container, with the paths of its files).

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::CgroupError;
use crate::engine::QosClass;

/// Which hierarchy holds the cpu controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hierarchy {
    /// cgroup v1 (`cpu`, `cpuacct` mounts), possibly with an unified hierarchy for PSI (hybrid).
    V1,
    /// Pure cgroup v2: one unified mount.
    V2,
}

/// The kubelet's `cgroupDriver`: how pod cgroups are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Driver {
    Cgroupfs,
    Systemd,
}

/// The container runtime, from the scheme of a container status ID (`containerd://…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
}

impl Runtime {
    /// Splits a container status ID into runtime and bare ID. The bare ID must be non-empty and
    /// of ASCII letters, digits, `-` and `_` only (runtimes use 64 hex digits), so it can never
    /// name a path outside the pod's cgroup.
    pub fn parse_id(container_id: &str) -> Result<(Runtime, &str), CgroupError> {
        let err = |why: &str| CgroupError::ContainerId {
            id: container_id.to_string(),
            why: why.to_string(),
        };
        let (scheme, id) = container_id
            .split_once("://")
            .ok_or_else(|| err("no runtime prefix (containerd://, cri-o:// or docker://)"))?;
        let runtime = match scheme {
            "containerd" => Runtime::Containerd,
            "cri-o" => Runtime::CriO,
            "docker" => Runtime::Docker,
            _ => return Err(err("unknown runtime (known: containerd, cri-o, docker)")),
        };
        if id.is_empty() {
            return Err(err("empty ID"));
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                "the ID has characters no runtime uses (only [A-Za-z0-9_-])",
            ));
        }
        Ok((runtime, id))
    }

    /// The container's cgroup directory name under its pod's cgroup.
    pub fn cgroup_name(self, driver: Driver, id: &str) -> String {
        match (driver, self) {
            // containerd and docker: `<parent>/<id>`; CRI-O's cgroupfs manager: `crio-<id>`.
            (Driver::Cgroupfs, Runtime::Containerd | Runtime::Docker) => id.to_string(),
            (Driver::Cgroupfs, Runtime::CriO) => format!("crio-{id}"),
            (Driver::Systemd, Runtime::Containerd) => format!("cri-containerd-{id}.scope"),
            (Driver::Systemd, Runtime::CriO) => format!("crio-{id}.scope"),
            (Driver::Systemd, Runtime::Docker) => format!("docker-{id}.scope"),
        }
    }
}

/// Absolute directories of one hierarchy layout; shared by every [`Cgroup`] of a [`Layout`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Roots {
    hierarchy: Hierarchy,
    /// v1: the cpu controller's mount; v2: the unified mount.
    cpu: PathBuf,
    /// v1: the cpuacct controller's mount (= `cpu` when co-mounted); v2: the unified mount.
    cpuacct: PathBuf,
    /// The unified hierarchy (v2: = `cpu`; hybrid: `<root>/unified`), for `cpu.pressure`.
    unified: Option<PathBuf>,
}

/// Where the kubelet's cgroups are on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
    driver: Driver,
    roots: Roots,
}

/// v1 mount names that can hold the cpu controller, in the order tried.
const V1_CPU_DIRS: [&str; 3] = ["cpu,cpuacct", "cpuacct,cpu", "cpu"];
const V1_CPUACCT_DIRS: [&str; 3] = ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"];

impl Layout {
    /// Detects the hierarchy under `root` (normally `/sys/fs/cgroup`) by its files:
    /// - `root/cgroup.controllers` exists → pure v2; the cpu controller must be listed there.
    /// - otherwise v1: the cpu controller is the first of `cpu,cpuacct/`, `cpuacct,cpu/`,
    ///   `cpu/` holding `cpu.shares`; `cpuacct.usage` is read from that directory when
    ///   co-mounted, else from the first of `cpuacct/`, `cpu,cpuacct/`, `cpuacct,cpu/` that has
    ///   it; `root/unified/` with `cgroup.controllers` is the hybrid unified hierarchy (PSI).
    /// - no v1 cpu controller, but `root/unified/cgroup.controllers` lists `cpu` (hybrid booted
    ///   with `cgroup_no_v1=cpu`) → v2 at `root/unified`.
    ///
    /// `driver` is the kubelet's `cgroupDriver` (an agent flag); [`Layout::detect_driver`]
    /// guesses it.
    pub fn detect(root: &Path, driver: Driver) -> Result<Layout, CgroupError> {
        let roots = if root.join("cgroup.controllers").is_file() {
            detect_v2(root)?
        } else {
            match detect_v1(root) {
                Ok(roots) => roots,
                // Hybrid with the cpu controller bound to the unified hierarchy
                // (`cgroup_no_v1=cpu`): v2 rules at `root/unified`.
                Err(e) => match detect_v2(&root.join("unified")) {
                    Ok(roots) => roots,
                    Err(_) => return Err(e),
                },
            }
        };
        Ok(Layout {
            root: root.to_path_buf(),
            driver,
            roots,
        })
    }

    /// Guesses the kubelet's cgroup driver from what it created: `kubepods.slice` → systemd,
    /// `kubepods` → cgroupfs, in the unified root or any v1 cpu mount. `None` when neither
    /// exists (kubelet not started yet, or `--cgroups-per-qos=false`).
    pub fn detect_driver(root: &Path) -> Option<Driver> {
        let dirs: Vec<PathBuf> = std::iter::once(root.to_path_buf())
            .chain(V1_CPU_DIRS.iter().map(|d| root.join(d)))
            .chain(std::iter::once(root.join("unified")))
            .collect();
        if dirs.iter().any(|d| d.join("kubepods.slice").is_dir()) {
            Some(Driver::Systemd)
        } else if dirs.iter().any(|d| d.join("kubepods").is_dir()) {
            Some(Driver::Cgroupfs)
        } else {
            None
        }
    }

    pub fn hierarchy(&self) -> Hierarchy {
        self.roots.hierarchy
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The root given to [`Layout::detect`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the hierarchy that holds the cpu controller.
    pub fn cpu_root(&self) -> &Path {
        &self.roots.cpu
    }

    /// The directory of the hierarchy that holds the usage counter (v1 cpuacct).
    pub fn cpuacct_root(&self) -> &Path {
        &self.roots.cpuacct
    }

    /// The unified hierarchy, if any (v2, or hybrid).
    pub fn unified_root(&self) -> Option<&Path> {
        self.roots.unified.as_deref()
    }

    /// True when the unified root has `cpu.pressure` (PSI compiled in). Reading it can still
    /// fail with `EOPNOTSUPP` when booted with `psi=0`; then [`super::Counters`] have no
    /// pressure.
    pub fn has_pressure(&self) -> bool {
        self.unified_root()
            .is_some_and(|u| u.join("cpu.pressure").is_file())
    }

    /// The pod-level cgroup of a pod of the given QoS class. The UID is used as the kubelet
    /// does (systemd: `-` → `_`); any character other than ASCII letters, digits, `-` and `_`
    /// is replaced by `_`, so that no UID can name a path outside the QoS tier (such a cgroup
    /// simply does not exist).
    pub fn pod(&self, qos: QosClass, pod_uid: &str) -> Cgroup {
        let uid: String = pod_uid
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let rel = match (self.driver, qos) {
            (Driver::Cgroupfs, QosClass::Guaranteed) => format!("kubepods/pod{uid}"),
            (Driver::Cgroupfs, QosClass::Burstable) => format!("kubepods/burstable/pod{uid}"),
            (Driver::Cgroupfs, QosClass::BestEffort) => format!("kubepods/besteffort/pod{uid}"),
            (Driver::Systemd, qos) => {
                let uid = uid.replace('-', "_");
                match qos {
                    QosClass::Guaranteed => format!("kubepods.slice/kubepods-pod{uid}.slice"),
                    QosClass::Burstable => format!(
                        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice"
                    ),
                    QosClass::BestEffort => format!(
                        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice"
                    ),
                }
            }
        };
        Cgroup::at(self, rel)
    }

    /// A container's cgroup from its status `containerID` (`containerd://<id>`,
    /// `cri-o://<id>`, `docker://<id>`), under its pod's cgroup. Errors for an unknown
    /// runtime, no prefix, or an empty or odd ID.
    pub fn container(&self, pod: &Cgroup, container_id: &str) -> Result<Cgroup, CgroupError> {
        let (runtime, id) = Runtime::parse_id(container_id)?;
        Ok(pod.child(&runtime.cgroup_name(self.driver, id)))
    }
}

fn detect_v2(root: &Path) -> Result<Roots, CgroupError> {
    let file = root.join("cgroup.controllers");
    let text = fs::read_to_string(&file).map_err(|e| CgroupError::read(&file, e))?;
    if !text.split_whitespace().any(|c| c == "cpu") {
        return Err(CgroupError::Detect {
            root: root.to_path_buf(),
            why: format!(
                "cgroup v2 without the cpu controller ({} lists {:?})",
                file.display(),
                text.trim()
            ),
        });
    }
    Ok(Roots {
        hierarchy: Hierarchy::V2,
        cpu: root.to_path_buf(),
        cpuacct: root.to_path_buf(),
        unified: Some(root.to_path_buf()),
    })
}

fn detect_v1(root: &Path) -> Result<Roots, CgroupError> {
    let detect_err = |why: String| CgroupError::Detect {
        root: root.to_path_buf(),
        why,
    };
    let cpu = V1_CPU_DIRS
        .iter()
        .map(|d| root.join(d))
        .find(|d| d.join("cpu.shares").is_file())
        .ok_or_else(|| {
            detect_err(format!(
                "no cgroup.controllers (v2) and no cpu.shares in any of {V1_CPU_DIRS:?} (v1)"
            ))
        })?;
    let cpuacct = if cpu.join("cpuacct.usage").is_file() {
        cpu.clone()
    } else {
        V1_CPUACCT_DIRS
            .iter()
            .map(|d| root.join(d))
            .find(|d| d.join("cpuacct.usage").is_file())
            .ok_or_else(|| {
                detect_err(format!(
                    "cgroup v1 cpu controller at {} but no cpuacct.usage there or in any of \
                     {V1_CPUACCT_DIRS:?}",
                    cpu.display()
                ))
            })?
    };
    let unified = root.join("unified");
    let unified = unified
        .join("cgroup.controllers")
        .is_file()
        .then_some(unified);
    Ok(Roots {
        hierarchy: Hierarchy::V1,
        cpu,
        cpuacct,
        unified,
    })
}

/// One cgroup (a pod, a container, or a scratch group), with the paths of its files in every
/// hierarchy that matters. Any of them may be absent: [`Cgroup::exists`] says whether the cpu
/// directory is there, and a missing pressure file only means no PSI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cgroup {
    rel: PathBuf,
    cpu_dir: PathBuf,
    roots: Roots,
}

impl Cgroup {
    /// The cgroup at `relative` (e.g. `kubepods/burstable/pod<UID>`, or a scratch group)
    /// under the layout's hierarchies. Leading `/`, `.` and `..` components are dropped: the
    /// result is always below the roots.
    pub fn at(layout: &Layout, relative: impl AsRef<Path>) -> Cgroup {
        let rel: PathBuf = relative
            .as_ref()
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        Cgroup {
            cpu_dir: layout.roots.cpu.join(&rel),
            rel,
            roots: layout.roots.clone(),
        }
    }

    /// A child cgroup (`name` is one path component).
    pub fn child(&self, name: &str) -> Cgroup {
        let rel: PathBuf = self
            .rel
            .join(name)
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        Cgroup {
            cpu_dir: self.roots.cpu.join(&rel),
            rel,
            roots: self.roots.clone(),
        }
    }

    /// The cgroup's directory in the cpu hierarchy (for messages).
    pub fn path(&self) -> &Path {
        &self.cpu_dir
    }

    /// The path relative to the hierarchy roots.
    pub fn relative(&self) -> &Path {
        &self.rel
    }

    pub fn hierarchy(&self) -> Hierarchy {
        self.roots.hierarchy
    }

    /// True when `self` is strictly below `other`.
    pub fn is_below(&self, other: &Cgroup) -> bool {
        self.rel != other.rel && self.rel.starts_with(&other.rel) && self.roots == other.roots
    }

    /// Whether the cgroup's directory exists in the cpu hierarchy.
    pub fn exists(&self) -> bool {
        self.cpu_dir.is_dir()
    }

    /// v1 `cpu.cfs_quota_us` / v2 `cpu.max`.
    pub fn quota_file(&self) -> PathBuf {
        match self.roots.hierarchy {
            Hierarchy::V1 => self.cpu_dir.join("cpu.cfs_quota_us"),
            Hierarchy::V2 => self.cpu_dir.join("cpu.max"),
        }
    }

    /// v1 `cpu.cfs_period_us` / v2 `cpu.max` (the period is its second field).
    pub fn period_file(&self) -> PathBuf {
        match self.roots.hierarchy {
            Hierarchy::V1 => self.cpu_dir.join("cpu.cfs_period_us"),
            Hierarchy::V2 => self.cpu_dir.join("cpu.max"),
        }
    }

    /// v1 `cpu.shares` / v2 `cpu.weight`.
    pub fn shares_file(&self) -> PathBuf {
        match self.roots.hierarchy {
            Hierarchy::V1 => self.cpu_dir.join("cpu.shares"),
            Hierarchy::V2 => self.cpu_dir.join("cpu.weight"),
        }
    }

    /// `cpu.stat` of the cpu hierarchy (throttling; on v2 also usage).
    pub fn stat_file(&self) -> PathBuf {
        self.cpu_dir.join("cpu.stat")
    }

    /// v1 `cpuacct.usage` (ns) / v2 `cpu.stat` (`usage_usec`).
    pub fn usage_file(&self) -> PathBuf {
        match self.roots.hierarchy {
            Hierarchy::V1 => self.roots.cpuacct.join(&self.rel).join("cpuacct.usage"),
            Hierarchy::V2 => self.stat_file(),
        }
    }

    /// `cpu.pressure` in the unified hierarchy, when the host has one.
    pub fn pressure_file(&self) -> Option<PathBuf> {
        let unified = self.roots.unified.as_ref()?;
        Some(unified.join(&self.rel).join("cpu.pressure"))
    }

    /// The file listing this cgroup's own threads: v1 `tasks` / v2 `cgroup.threads`.
    pub fn threads_file(&self) -> PathBuf {
        match self.roots.hierarchy {
            Hierarchy::V1 => self.cpu_dir.join("tasks"),
            Hierarchy::V2 => self.cpu_dir.join("cgroup.threads"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Tree;
    use super::*;

    const UID: &str = "0b5e1c2d-aaaa-4bbb-8ccc-123456789abc";
    const CID: &str = "4f8e2a9c0d1b";

    #[test]
    fn detects_this_hosts_hybrid_shape() {
        let t = Tree::hybrid_v1("detect-hybrid");
        let l = Layout::detect(t.root(), Driver::Cgroupfs).expect("detects");
        assert_eq!(l.hierarchy(), Hierarchy::V1);
        assert_eq!(l.cpu_root(), t.root().join("cpu"));
        assert_eq!(l.cpuacct_root(), t.root().join("cpuacct"));
        assert_eq!(l.unified_root(), Some(t.root().join("unified").as_path()));
        assert!(l.has_pressure());
        assert_eq!(Layout::detect_driver(t.root()), None);
        t.dir("cpu/kubepods");
        assert_eq!(Layout::detect_driver(t.root()), Some(Driver::Cgroupfs));
    }

    #[test]
    fn detects_co_mounted_v1_without_unified() {
        let t = Tree::comounted_v1("detect-comounted");
        let l = Layout::detect(t.root(), Driver::Systemd).expect("detects");
        assert_eq!(l.hierarchy(), Hierarchy::V1);
        assert_eq!(l.cpu_root(), t.root().join("cpu,cpuacct"));
        assert_eq!(l.cpuacct_root(), t.root().join("cpu,cpuacct"));
        assert_eq!(l.unified_root(), None);
        assert!(!l.has_pressure());
        t.dir("cpu,cpuacct/kubepods.slice");
        assert_eq!(Layout::detect_driver(t.root()), Some(Driver::Systemd));
    }

    #[test]
    fn detects_pure_v2() {
        let t = Tree::v2("detect-v2");
        let l = Layout::detect(t.root(), Driver::Systemd).expect("detects");
        assert_eq!(l.hierarchy(), Hierarchy::V2);
        assert_eq!(l.cpu_root(), t.root());
        assert_eq!(l.unified_root(), Some(t.root()));
        assert!(l.has_pressure());
        t.dir("kubepods.slice");
        assert_eq!(Layout::detect_driver(t.root()), Some(Driver::Systemd));
    }

    #[test]
    fn detects_hybrid_with_cpu_on_the_unified_hierarchy() {
        let t = Tree::empty("detect-unified-cpu");
        t.file("memory/memory.limit_in_bytes", "0\n");
        t.file("unified/cgroup.controllers", "cpu\n");
        let l = Layout::detect(t.root(), Driver::Cgroupfs).expect("detects");
        assert_eq!(l.hierarchy(), Hierarchy::V2);
        assert_eq!(l.cpu_root(), t.root().join("unified"));
        let p = l.pod(QosClass::Burstable, UID);
        assert_eq!(
            p.quota_file(),
            t.root()
                .join(format!("unified/kubepods/burstable/pod{UID}/cpu.max"))
        );
        t.dir("unified/kubepods");
        assert_eq!(Layout::detect_driver(t.root()), Some(Driver::Cgroupfs));
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let t = Tree::empty("detect-nothing");
        let e = Layout::detect(t.root(), Driver::Cgroupfs).expect_err("nothing there");
        assert!(
            e.to_string().contains(&t.root().display().to_string()),
            "{e}"
        );
        assert!(e.to_string().contains("cpu.shares"), "{e}");

        let t = Tree::empty("detect-v2-no-cpu");
        t.file("cgroup.controllers", "memory pids\n");
        let e = Layout::detect(t.root(), Driver::Cgroupfs).expect_err("no cpu controller");
        assert!(e.to_string().contains("without the cpu controller"), "{e}");

        let t = Tree::empty("detect-no-cpuacct");
        t.file("cpu/cpu.shares", "1024\n");
        let e = Layout::detect(t.root(), Driver::Cgroupfs).expect_err("no cpuacct");
        assert!(e.to_string().contains("cpuacct.usage"), "{e}");
    }

    #[test]
    fn cgroupfs_paths() {
        let t = Tree::hybrid_v1("paths-cgroupfs");
        let l = Layout::detect(t.root(), Driver::Cgroupfs).expect("detects");
        let cpu = t.root().join("cpu");
        let g = l.pod(QosClass::Guaranteed, UID);
        assert_eq!(g.path(), cpu.join(format!("kubepods/pod{UID}")));
        let b = l.pod(QosClass::Burstable, UID);
        assert_eq!(
            b.relative(),
            Path::new(&format!("kubepods/burstable/pod{UID}"))
        );
        let be = l.pod(QosClass::BestEffort, UID);
        assert_eq!(
            be.relative(),
            Path::new(&format!("kubepods/besteffort/pod{UID}"))
        );

        let c = l.container(&b, &format!("containerd://{CID}")).expect("id");
        assert_eq!(c.path(), b.path().join(CID));
        assert_eq!(c.quota_file(), b.path().join(CID).join("cpu.cfs_quota_us"));
        assert_eq!(
            c.usage_file(),
            t.root()
                .join("cpuacct/kubepods/burstable")
                .join(format!("pod{UID}/{CID}/cpuacct.usage"))
        );
        assert_eq!(
            c.pressure_file(),
            Some(
                t.root()
                    .join("unified/kubepods/burstable")
                    .join(format!("pod{UID}/{CID}/cpu.pressure"))
            )
        );
        assert_eq!(c.threads_file(), c.path().join("tasks"));
        assert!(c.is_below(&b));
        assert!(!b.is_below(&b));
        assert!(!b.is_below(&c));
        let d = l.container(&b, &format!("docker://{CID}")).expect("id");
        assert_eq!(d.relative(), b.relative().join(CID));
        let o = l.container(&b, &format!("cri-o://{CID}")).expect("id");
        assert_eq!(o.relative(), b.relative().join(format!("crio-{CID}")));
    }

    #[test]
    fn systemd_paths() {
        let t = Tree::v2("paths-systemd");
        let l = Layout::detect(t.root(), Driver::Systemd).expect("detects");
        let uid_ = UID.replace('-', "_");
        let g = l.pod(QosClass::Guaranteed, UID);
        assert_eq!(
            g.relative(),
            Path::new(&format!("kubepods.slice/kubepods-pod{uid_}.slice"))
        );
        let b = l.pod(QosClass::Burstable, UID);
        assert_eq!(
            b.path(),
            t.root().join(format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice"
            ))
        );
        let be = l.pod(QosClass::BestEffort, UID);
        assert_eq!(
            be.relative(),
            Path::new(&format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice"
            ))
        );
        for (id, name) in [
            (
                format!("containerd://{CID}"),
                format!("cri-containerd-{CID}.scope"),
            ),
            (format!("cri-o://{CID}"), format!("crio-{CID}.scope")),
            (format!("docker://{CID}"), format!("docker-{CID}.scope")),
        ] {
            let c = l.container(&b, &id).expect("id");
            assert_eq!(c.path(), b.path().join(&name), "{id}");
            assert_eq!(c.quota_file(), b.path().join(&name).join("cpu.max"));
            assert_eq!(c.shares_file(), b.path().join(&name).join("cpu.weight"));
            assert_eq!(c.usage_file(), b.path().join(&name).join("cpu.stat"));
            assert_eq!(
                c.threads_file(),
                b.path().join(&name).join("cgroup.threads")
            );
            assert_eq!(
                c.pressure_file(),
                Some(b.path().join(&name).join("cpu.pressure"))
            );
        }
    }

    #[test]
    fn bad_container_ids_and_uids() {
        let t = Tree::hybrid_v1("paths-bad");
        let l = Layout::detect(t.root(), Driver::Cgroupfs).expect("detects");
        let pod = l.pod(QosClass::Burstable, UID);
        for (id, why) in [
            ("", "no runtime prefix"),
            (CID, "no runtime prefix"),
            ("rkt://abc", "unknown runtime"),
            ("containerd://", "empty ID"),
            ("containerd://../../x", "characters"),
            ("containerd://a/b", "characters"),
        ] {
            let e = l.container(&pod, id).expect_err(id);
            let text = e.to_string();
            assert!(text.contains(why), "{id:?}: {text}");
            assert!(text.contains(&format!("{id:?}")), "{id:?}: {text}");
        }
        let odd = l.pod(QosClass::Burstable, "../../../etc");
        assert!(
            odd.path()
                .starts_with(t.root().join("cpu/kubepods/burstable"))
        );
        assert_eq!(
            odd.relative(),
            Path::new("kubepods/burstable/pod_________etc")
        );
        let scratch = Cgroup::at(&l, "/../x/./y");
        assert_eq!(scratch.relative(), Path::new("x/y"));
        assert_eq!(scratch.child("..").relative(), Path::new("x/y"));
    }
}
