//! The batch workload: compiling zstd (Debian's pinned `libzstd` source package) with `make -j2`
//! in a root filesystem assembled from Debian packages (`experiments/workloads/build`). The same
//! root filesystem is the compile image on the local cluster (E0, E2) and the chroot on the
//! host under a cgroup of our own (E1), so every experiment compiles the same thing with the
//! same gcc.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cgroup::{CpuStat, OwnedCgroup};

/// What to compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// The zstd command-line tool: all library sources + programs, one link (~55 compiler
    /// runs; ≈ 30 s on 2 idle cores here).
    Cli,
    /// Everything `make` builds by default (static + shared library, programs; ≈ 80 s).
    Full,
    /// The decompression-only static library (≈ 7 s): smoke tests (`--quick`).
    Small,
}

impl Profile {
    /// The make invocation, run in the source tree.
    pub fn make_command(self, jobs: u32) -> String {
        match self {
            Profile::Cli => format!("make -j{jobs} -C programs zstd"),
            Profile::Full => format!("make -j{jobs}"),
            Profile::Small => format!(
                "make -j{jobs} -C lib libzstd.a ZSTD_LIB_COMPRESSION=0 ZSTD_LIB_DICTBUILDER=0 ZSTD_LIB_DEPRECATED=0"
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Cli => "cli",
            Profile::Full => "full",
            Profile::Small => "small",
        }
    }

    /// The container's script: copy the pristine sources, build, print one parseable line,
    /// then sleep (a Deployment must not restart a finished build).
    pub fn pod_script(self, jobs: u32) -> String {
        format!(
            "rm -rf /tmp/b && cp -a /src/zstd /tmp/b && cd /tmp/b && s=$(date +%s%N) && rc=0 && {{ {} >/tmp/make.log 2>&1 || rc=$?; }}; \
             e=$(date +%s%N); echo \"BSC-BUILD-DONE rc=$rc ms=$(( (e - s) / 1000000 ))\"; \
             [ $rc = 0 ] || tail -20 /tmp/make.log; exec sleep 86400",
            self.make_command(jobs)
        )
    }
}

/// A finished build reported by a compile container: `BSC-BUILD-DONE rc=0 ms=31234`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildDone {
    pub rc: i32,
    pub ms: u64,
}

pub fn parse_build_done(log: &str) -> Option<BuildDone> {
    let line = log.lines().find(|l| l.starts_with("BSC-BUILD-DONE "))?;
    let mut rc = None;
    let mut ms = None;
    for kv in line.split_whitespace().skip(1) {
        match kv.split_once('=') {
            Some(("rc", v)) => rc = v.parse().ok(),
            Some(("ms", v)) => ms = v.parse().ok(),
            _ => {}
        }
    }
    Some(BuildDone { rc: rc?, ms: ms? })
}

/// The compile root filesystem (assembled once, cached).
pub fn rootfs(repo: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new("bash")
        .arg(repo.join("experiments/workloads/build"))
        .arg("rootfs")
        .stderr(Stdio::inherit())
        .output()
        .context("run experiments/workloads/build rootfs")?;
    if !out.status.success() {
        bail!("experiments/workloads/build rootfs failed ({})", out.status);
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(path))
}

/// Imports the compile and web images into the local cluster; returns (compile, web) names.
pub fn images(repo: &Path) -> anyhow::Result<(String, String)> {
    let me = std::env::current_exe().context("locate the experiments binary")?;
    let out = Command::new("bash")
        .arg(repo.join("experiments/workloads/build"))
        .arg("images")
        .arg(&me)
        .stderr(Stdio::inherit())
        .output()
        .context("run experiments/workloads/build images")?;
    if !out.status.success() {
        bail!("experiments/workloads/build images failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(c), Some(w)) => Ok((c.to_string(), w.to_string())),
        _ => bail!("experiments/workloads/build images printed {text:?}, expected two image names"),
    }
}

/// One host build under a cgroup limit.
#[derive(Clone, Copy, Debug)]
pub struct HostRun {
    pub wall: Duration,
    pub stat: CpuStat,
}

/// Builds `profile` in `rootfs` (chroot) inside `cgroup`; the copy of the sources happens
/// before, outside the measurement.
pub fn build_on_host(
    rootfs: &Path,
    profile: Profile,
    jobs: u32,
    cgroup: &OwnedCgroup,
    log: &Path,
) -> anyhow::Result<HostRun> {
    let dev_null = rootfs.join("dev/null");
    let made_dev_null = !dev_null.exists();
    if made_dev_null {
        // Makefiles redirect to /dev/null; a container runtime provides it, a chroot does not.
        std::fs::create_dir_all(rootfs.join("dev"))?;
        let st = Command::new("mknod")
            .args(["-m", "666"])
            .arg(&dev_null)
            .args(["c", "1", "3"])
            .status()?;
        if !st.success() {
            bail!("mknod {} failed", dev_null.display());
        }
    }
    let result = (|| {
        let prep = Command::new("chroot")
            .arg(rootfs)
            .args(["/bin/sh", "-c", "rm -rf /tmp/e1 && cp -a /src/zstd /tmp/e1"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .status()
            .context("chroot (run as root)")?;
        if !prep.success() {
            bail!("preparing the build tree failed ({prep})");
        }
        let before = cgroup.paths.stat()?;
        let script = format!(
            "{}exec chroot '{}' /bin/sh -c 'cd /tmp/e1 && {}'",
            cgroup.join_script(),
            rootfs.display(),
            profile.make_command(jobs)
        );
        let logf = std::fs::File::create(log)?;
        let t = Instant::now();
        let status = Command::new("sh")
            .args(["-c", &script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C")
            .stdout(logf.try_clone()?)
            .stderr(logf)
            .status()?;
        let wall = t.elapsed();
        if !status.success() {
            bail!("the build failed ({status}); see {}", log.display());
        }
        let stat = cgroup.paths.stat()?.since(&before);
        let _ = Command::new("chroot")
            .arg(rootfs)
            .args(["/bin/sh", "-c", "rm -rf /tmp/e1"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .status();
        Ok(HostRun { wall, stat })
    })();
    if made_dev_null {
        let _ = std::fs::remove_file(&dev_null);
        let _ = std::fs::remove_dir(rootfs.join("dev"));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_build_done_line() {
        let log = "cp ...\nBSC-BUILD-DONE rc=0 ms=31234\n";
        assert_eq!(parse_build_done(log), Some(BuildDone { rc: 0, ms: 31234 }));
        assert_eq!(
            parse_build_done("BSC-BUILD-DONE rc=2 ms=10\nerror: ..."),
            Some(BuildDone { rc: 2, ms: 10 })
        );
        assert_eq!(parse_build_done("still building"), None);
        assert_eq!(parse_build_done("BSC-BUILD-DONE rc=x ms=1"), None);
    }

    #[test]
    fn the_pod_script_reports_and_sleeps() {
        let s = Profile::Cli.pod_script(2);
        assert!(s.contains("make -j2 -C programs zstd"));
        assert!(s.contains("BSC-BUILD-DONE"));
        assert!(s.ends_with("exec sleep 86400"));
    }
}
