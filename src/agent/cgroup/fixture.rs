//! Fake cgroup trees under the temp directory, for unit tests of the v2 and systemd paths and
//! of the readers and writers (files are plain files here: the kernel's rules do not apply).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A directory tree removed on drop.
pub struct Tree {
    root: PathBuf,
}

impl Tree {
    pub fn empty(name: &str) -> Tree {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root =
            std::env::temp_dir().join(format!("bsc-cgroup-unit-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create the fixture root");
        Tree { root }
    }

    /// This host's shape: separate `cpu` and `cpuacct` v1 mounts and an unified hierarchy
    /// without controllers at `unified/`.
    pub fn hybrid_v1(name: &str) -> Tree {
        let t = Tree::empty(name);
        t.v1_cpu_files("cpu");
        t.file("cpuacct/cpuacct.usage", "0\n");
        t.file("unified/cgroup.controllers", "\n");
        t.file("unified/cpu.pressure", &psi(0));
        t
    }

    /// `cpu,cpuacct` co-mounted, no unified hierarchy.
    pub fn comounted_v1(name: &str) -> Tree {
        let t = Tree::empty(name);
        t.v1_cpu_files("cpu,cpuacct");
        t.file("cpu,cpuacct/cpuacct.usage", "0\n");
        t
    }

    /// Pure cgroup v2 with the cpu controller.
    pub fn v2(name: &str) -> Tree {
        let t = Tree::empty(name);
        t.file("cgroup.controllers", "cpuset cpu io memory pids\n");
        t.file("cpu.pressure", &psi(0));
        t.file("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
        t
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        fs::create_dir_all(&p).expect("create a fixture directory");
        p
    }

    pub fn file(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create a fixture directory");
        }
        fs::write(&p, text).expect("write a fixture file");
        p
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).expect("read a fixture file")
    }

    fn v1_cpu_files(&self, dir: &str) {
        self.file(&format!("{dir}/cpu.shares"), "1024\n");
        self.file(&format!("{dir}/cpu.cfs_quota_us"), "-1\n");
        self.file(&format!("{dir}/cpu.cfs_period_us"), "100000\n");
    }

    /// A v1 cgroup at `rel` in `cpu/`, `cpuacct/` and (hybrid) `unified/`.
    pub fn v1_group(&self, rel: &str, quota: &str, shares: u64, usage_ns: u64) {
        self.file(
            &format!("cpu/{rel}/cpu.cfs_quota_us"),
            &format!("{quota}\n"),
        );
        self.file(&format!("cpu/{rel}/cpu.cfs_period_us"), "100000\n");
        self.file(&format!("cpu/{rel}/cpu.shares"), &format!("{shares}\n"));
        self.file(
            &format!("cpu/{rel}/cpu.stat"),
            "nr_periods 10\nnr_throttled 4\nthrottled_time 123456\nnr_bursts 0\nburst_time 0\n",
        );
        self.file(&format!("cpu/{rel}/tasks"), "");
        self.file(
            &format!("cpuacct/{rel}/cpuacct.usage"),
            &format!("{usage_ns}\n"),
        );
    }

    /// A v2 cgroup at `rel`.
    pub fn v2_group(&self, rel: &str, max: &str, weight: u64) {
        self.file(&format!("{rel}/cpu.max"), &format!("{max}\n"));
        self.file(&format!("{rel}/cpu.weight"), &format!("{weight}\n"));
        self.file(
            &format!("{rel}/cpu.stat"),
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 8\nnr_throttled 2\n\
             throttled_usec 700\nnr_bursts 0\nburst_usec 0\n",
        );
        self.file(&format!("{rel}/cpu.pressure"), &psi(4242));
        self.file(&format!("{rel}/cgroup.threads"), "");
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A `cpu.pressure` text with `some total=<us>`.
pub fn psi(some_total_us: u64) -> String {
    format!(
        "some avg10=0.00 avg60=0.00 avg300=0.00 total={some_total_us}\n\
         full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
}
