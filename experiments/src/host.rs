//! What the host was doing and what it ran: CPU time (busy, steal) from `/proc/stat`, load
//! average, whether the local cluster's processes were up, a single-thread speed probe, and the
//! versions of the compile's toolchain. Everything a number can move with.

use std::path::Path;

/// USER_HZ: `/proc/stat` counts in ticks of 1/100 s on Linux.
const TICKS_PER_S: f64 = 100.0;

/// Host-wide CPU time so far, seconds (all CPUs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq (guest time is inside user).
    pub busy_s: f64,
    pub steal_s: f64,
}

/// Parses the `cpu` line of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    if f.len() < 8 {
        return None;
    }
    Some(CpuTimes {
        busy_s: (f[0] + f[1] + f[2] + f[5] + f[6]) / TICKS_PER_S,
        steal_s: f[7] / TICKS_PER_S,
    })
}

pub fn cpu_times() -> Option<CpuTimes> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

pub fn loadavg_text() -> String {
    loadavg().map_or("unknown".into(), |l| {
        format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
    })
}

/// The Kubernetes processes running on this host (the local cluster's, or anyone's): an idle
/// control plane costs a tenth of a core or more, which E1 must not share the machine with.
pub fn cluster_processes() -> Vec<String> {
    const NAMES: [&str; 6] = [
        "kube-apiserver",
        "kubelet",
        "etcd",
        "kube-controller",
        "kube-scheduler",
        "containerd",
    ];
    let mut found: Vec<String> = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) {
            let comm = comm.trim();
            if NAMES.contains(&comm) && !found.iter().any(|f| f == comm) {
                found.push(comm.to_string());
            }
        }
    }
    found.sort();
    found
}

/// `down`, or `up:` and the processes found.
pub fn cluster_state() -> String {
    let p = cluster_processes();
    if p.is_empty() {
        "down".into()
    } else {
        format!("up:{}", p.join("+"))
    }
}

/// The command line of the first running process named `comm` (`/proc/PID/comm`), its
/// arguments after the program, and its environment (`NAME=value`).
fn process(comm: &str) -> Option<(String, Vec<String>, Vec<String>)> {
    let split = |b: Vec<u8>| -> Vec<String> {
        b.split(|c| *c == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let p = e.path();
        let same = std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == comm);
        if !same {
            continue;
        }
        let mut args = split(std::fs::read(p.join("cmdline")).ok()?);
        if args.is_empty() {
            continue;
        }
        let program = args.remove(0);
        let env = split(std::fs::read(p.join("environ")).unwrap_or_default());
        return Some((program, args, env));
    }
    None
}

/// The local cluster's settings that can move a number, as Markdown: every control-plane
/// process's program and flags, the kubelet's configuration file, and the metrics server's
/// resolution (how often metrics.k8s.io usage changes: what the HPA and the controller see).
/// Empty when the cluster is not running.
pub fn cluster_settings() -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    // `comm` is cut to 15 characters by the kernel.
    for comm in [
        "kube-apiserver",
        "kube-controller",
        "kube-scheduler",
        "kubelet",
        "bsc-metrics-ser",
    ] {
        let Some((program, args, env)) = process(comm) else {
            continue;
        };
        let _ = writeln!(s, "- `{program}` {}", args.join(" "));
        if comm == "kubelet"
            && let Some(config) = args.iter().find_map(|a| a.strip_prefix("--config="))
            && let Ok(text) = std::fs::read_to_string(config)
        {
            let _ = writeln!(
                s,
                "  - kubelet configuration `{config}`:\n\n    ```yaml\n{}\n    ```",
                text.trim_end()
                    .lines()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        if comm == "bsc-metrics-ser" {
            let flag = args
                .iter()
                .position(|a| a == "--resolution-secs")
                .and_then(|i| args.get(i + 1).cloned());
            let from_env = env.iter().find_map(|v| {
                v.strip_prefix("BSC_METRICS_RESOLUTION_SECS=")
                    .map(str::to_string)
            });
            let _ = writeln!(
                s,
                "  - metrics resolution: {}",
                match flag.or(from_env) {
                    Some(v) => format!("{v} s"),
                    None => "its default (`--resolution-secs`, 10 s)".to_string(),
                }
            );
        }
    }
    s
}

/// Milliseconds for 2 million iterations of the web service's work loop, best of 5: the
/// machine's single-thread speed, which a VM's neighbours move.
pub fn speed_probe_ms() -> f64 {
    (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            crate::serve::burn(2_000_000);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .fold(f64::INFINITY, f64::min)
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The repository's commit, `+changes` when the work tree differs from it.
pub fn commit(repo: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "-uno"]).is_some_and(|s| !s.is_empty());
            format!("{c}{}", if dirty { "+changes" } else { "" })
        }
        None => "unknown".into(),
    }
}

/// The packages in the compile root filesystem that decide what a build does (its `PACKAGES`
/// file: `Package: NAME Version: V` per line) and the zstd source (`src/VERSION`).
pub fn toolchain(rootfs: &Path) -> Vec<(String, String)> {
    let packages = std::fs::read_to_string(rootfs.join("PACKAGES")).unwrap_or_default();
    let version_of = |name: &str| {
        packages
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix("Package: ")?;
                let (pkg, v) = rest.split_once(" Version: ")?;
                (pkg == name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into())
    };
    let mut v: Vec<(String, String)> = ["gcc-12", "binutils", "make", "libc6", "dash"]
        .iter()
        .map(|p| (p.to_string(), version_of(p)))
        .collect();
    let src = std::fs::read_to_string(rootfs.join("src/VERSION"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    v.push(("zstd source".into(), src));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let t = parse_proc_stat(
            "cpu  100 5 50 1000 20 3 2 40 0 0\ncpu0 50 2 25 500 10 1 1 20 0 0\nintr 1\n",
        )
        .expect("cpu line");
        assert!((t.busy_s - 1.60).abs() < 1e-9);
        assert!((t.steal_s - 0.40).abs() < 1e-9);
        assert_eq!(parse_proc_stat("cpu  1 2 3\n"), None);
        assert_eq!(parse_proc_stat("intr 1\n"), None);
    }

    #[test]
    fn reads_toolchain_versions() {
        let dir = std::env::temp_dir().join(format!("bsc-host-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).expect("mkdir");
        std::fs::write(
            dir.join("PACKAGES"),
            "Package: gcc-12-base Version: 1\nPackage: gcc-12 Version: 12.2.0-14\nPackage: make Version: 4.3-4.1\n",
        )
        .expect("write");
        std::fs::write(dir.join("src/VERSION"), "libzstd 1.5.4+dfsg2-5\n").expect("write");
        let v = toolchain(&dir);
        let get = |k: &str| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("gcc-12").as_deref(), Some("12.2.0-14"));
        assert_eq!(get("make").as_deref(), Some("4.3-4.1"));
        assert_eq!(get("binutils").as_deref(), Some("unknown"));
        assert_eq!(get("zstd source").as_deref(), Some("libzstd 1.5.4+dfsg2-5"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
