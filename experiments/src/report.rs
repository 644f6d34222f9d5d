//! Results on disk: `experiments/results/<timestamp>-<suite>/` with raw CSV, `summary.md`,
//! plots, the exact command and the machine; and the latest numbers in `experiments/README.md`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(root: &Path, suite: &str) -> anyhow::Result<RunDir> {
        let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
        let path = root.join(format!("{stamp}-{suite}"));
        fs::create_dir_all(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(RunDir { path })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write(&self, name: &str, content: &str) -> anyhow::Result<()> {
        fs::write(self.file(name), content).with_context(|| format!("write {name}"))
    }

    /// Writes a CSV (fields are numbers or simple names; commas/quotes are quoted).
    pub fn csv(&self, name: &str, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
        self.write(name, &to_csv(header, rows))
    }
}

pub fn to_csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let field = |f: &str| {
        if f.contains([',', '"', '\n']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_string()
        }
    };
    let mut out = header.join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// Replaces the text between `<!-- results:KEY -->` and `<!-- /results:KEY -->`.
pub fn replace_block(text: &str, key: &str, block: &str) -> anyhow::Result<String> {
    let open = format!("<!-- results:{key} -->");
    let close = format!("<!-- /results:{key} -->");
    let (Some(a), Some(b)) = (text.find(&open), text.find(&close)) else {
        bail!("experiments/README.md has no {open} ... {close} block");
    };
    if b < a {
        bail!("{close} comes before {open}");
    }
    Ok(format!(
        "{}{open}\n{}\n{}",
        &text[..a],
        block.trim_end(),
        &text[b..]
    ))
}

pub fn update_readme(readme: &Path, key: &str, block: &str) -> anyhow::Result<()> {
    let text = fs::read_to_string(readme).with_context(|| format!("read {}", readme.display()))?;
    fs::write(readme, replace_block(&text, key, block)?)
        .with_context(|| format!("write {}", readme.display()))
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The machine, as a Markdown list.
pub fn machine_description(repo: &Path) -> String {
    let mut s = String::new();
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let _ = writeln!(s, "- CPU: {} × {}", sh("nproc"), cpu.trim());
    let _ = writeln!(
        s,
        "- memory: {}",
        sh("grep MemTotal /proc/meminfo | tr -s ' '")
    );
    let _ = writeln!(s, "- kernel: {}", sh("uname -sr"));
    let _ = writeln!(s, "- OS: Debian {}", sh("cat /etc/debian_version"));
    let _ = writeln!(
        s,
        "- cgroups: v1 cpu at /sys/fs/cgroup/cpu (cfs_burst_us: {})",
        if Path::new("/sys/fs/cgroup/cpu/cpu.cfs_burst_us").exists() {
            "yes"
        } else {
            "no"
        }
    );
    let _ = writeln!(
        s,
        "- load average at start: {}",
        sh("cut -d' ' -f1-3 /proc/loadavg")
    );
    let _ = writeln!(
        s,
        "- burst-scaler commit: {}{}",
        sh(&format!(
            "git -C '{}' rev-parse --short HEAD",
            repo.display()
        )),
        if sh(&format!(
            "git -C '{}' status --porcelain -uno",
            repo.display()
        ))
        .is_empty()
        {
            ""
        } else {
            " (with local changes)"
        }
    );
    s
}

/// Progress on stderr: elapsed time and what runs now.
pub struct Progress {
    start: Instant,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            start: Instant::now(),
        }
    }

    pub fn say(&self, msg: impl AsRef<str>) {
        let t = self.start.elapsed().as_secs();
        eprintln!("[{:>2}:{:02}] {}", t / 60, t % 60, msg.as_ref());
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// Formats an optional number with `digits` decimals ("–" when absent).
pub fn opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let s = to_csv(
            &["a", "b"],
            &[
                vec!["1".into(), "x,y".into()],
                vec!["say \"hi\"".into(), "2".into()],
            ],
        );
        assert_eq!(s, "a,b\n1,\"x,y\"\n\"say \"\"hi\"\"\",2\n");
    }

    #[test]
    fn replaces_only_the_named_block() {
        let t = "# R\n<!-- results:e1 -->\nold\n<!-- /results:e1 -->\nkeep\n<!-- results:e2 -->\nx\n<!-- /results:e2 -->\n";
        let out = replace_block(t, "e1", "| new |\n").expect("block exists");
        assert_eq!(
            out,
            "# R\n<!-- results:e1 -->\n| new |\n<!-- /results:e1 -->\nkeep\n<!-- results:e2 -->\nx\n<!-- /results:e2 -->\n"
        );
        assert!(replace_block(t, "e9", "x").is_err());
    }

    #[test]
    fn the_readme_has_a_block_for_every_suite() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("experiments/README.md");
        for key in ["e0", "e1", "e2"] {
            assert!(
                replace_block(&readme, key, "x").is_ok(),
                "experiments/README.md lacks the {key} block"
            );
        }
    }
}
