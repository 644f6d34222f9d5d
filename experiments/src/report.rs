//! Results on disk: `experiments/results/<timestamp>-<suite>/` with raw CSV, `summary.md`,
//! plots, the exact command and the machine; and the latest numbers in `experiments/README.md`.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    /// An existing results directory (to resume a run in it).
    pub fn open(path: &Path) -> anyhow::Result<RunDir> {
        if !path.is_dir() {
            bail!("{} is not a results directory", path.display());
        }
        Ok(RunDir {
            path: path.to_path_buf(),
        })
    }

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

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// One CSV line (with its newline).
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let mut out = fields
        .iter()
        .map(|f| csv_field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    out
}

pub fn to_csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = csv_line(header);
    for r in rows {
        out.push_str(&csv_line(r));
    }
    out
}

/// Appends one row to a CSV file, writing `header` first if the file is new or empty, and
/// refusing a file whose header is another one (an older format). The row is flushed to disk
/// before this returns: a crash afterwards loses nothing of it.
pub fn append_csv_row(path: &Path, header: &[&str], row: &[String]) -> anyhow::Result<()> {
    append_csv_rows(path, header, &[row.to_vec()])
}

/// [`append_csv_row`] for several rows at once (one write, one flush; the header alone when
/// there are none, so that the file exists).
pub fn append_csv_rows(path: &Path, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let existing = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let mut text = String::new();
    if existing.trim().is_empty() {
        text.push_str(&csv_line(header));
    } else {
        let first = existing.lines().next().unwrap_or_default();
        if first != csv_line(header).trim_end() {
            bail!(
                "{} has other columns ({first:?}): an older format; use a new results directory",
                path.display()
            );
        }
        if !existing.ends_with('\n') {
            // A row cut short by a crash: end it so the new row starts on its own line (the
            // reader reports the cut row).
            text.push('\n');
        }
    }
    for row in rows {
        text.push_str(&csv_line(row));
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("append to {}", path.display()))?;
    f.sync_data()
        .with_context(|| format!("sync {}", path.display()))
}

/// A parsed CSV file: its header and rows of fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsvTable {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Lines whose field count is not the header's (e.g. a row cut short by a crash), with
    /// their line numbers: left out of `rows`, reported by the readers.
    pub bad_lines: Vec<(usize, String)>,
}

impl CsvTable {
    pub fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The field `name` of `row` ("" when the column is absent).
    pub fn get<'a>(&self, row: &'a [String], name: &str) -> &'a str {
        self.col(name)
            .and_then(|i| row.get(i))
            .map_or("", String::as_str)
    }
}

/// Parses CSV as `to_csv` writes it (RFC 4180 quoting; `\n` or `\r\n` line ends).
pub fn parse_csv(text: &str) -> CsvTable {
    let mut records: Vec<(usize, Vec<String>, String)> = Vec::new();
    let (mut field, mut fields, mut raw) = (String::new(), Vec::new(), String::new());
    let (mut quoted, mut line, mut start_line) = (false, 1usize, 1usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\n' || quoted {
            raw.push(c);
        }
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                raw.push('"');
                chars.next();
                field.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if field.is_empty() => quoted = true,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            '\n' if !quoted => {
                fields.push(std::mem::take(&mut field));
                records.push((
                    start_line,
                    std::mem::take(&mut fields),
                    std::mem::take(&mut raw),
                ));
                line += 1;
                start_line = line;
            }
            '\n' => {
                line += 1;
                field.push(c);
            }
            '\r' if !quoted && chars.peek() == Some(&'\n') => {}
            _ => field.push(c),
        }
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push((start_line, fields, raw));
    }
    let mut it = records.into_iter();
    let header = it.next().map(|(_, f, _)| f).unwrap_or_default();
    let mut table = CsvTable {
        header,
        ..CsvTable::default()
    };
    for (n, f, raw) in it {
        if f.len() == 1 && f[0].is_empty() {
            continue; // an empty line
        }
        if f.len() == table.header.len() {
            table.rows.push(f);
        } else {
            table.bad_lines.push((n, raw));
        }
    }
    table
}

pub fn read_csv(path: &Path) -> anyhow::Result<CsvTable> {
    let text = fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    Ok(parse_csv(&text))
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
        crate::host::loadavg_text()
    );
    let cluster = crate::host::cluster_processes();
    let _ = writeln!(
        s,
        "- Kubernetes processes on the host at start: {}",
        if cluster.is_empty() {
            "none".to_string()
        } else {
            cluster.join(", ")
        }
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

/// Progress on stderr (and appended to a log file, if given): elapsed time and what runs now.
pub struct Progress {
    start: Instant,
    log: Option<fs::File>,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            start: Instant::now(),
            log: None,
        }
    }

    /// Also appends every line, with the wall-clock time, to `path` (a run in the background
    /// can be followed there; a resumed run appends).
    pub fn with_log(path: &Path) -> anyhow::Result<Progress> {
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        Ok(Progress {
            start: Instant::now(),
            log: Some(f),
        })
    }

    pub fn say(&self, msg: impl AsRef<str>) {
        let t = self.start.elapsed().as_secs();
        let line = format!("[{:>2}:{:02}] {}", t / 60, t % 60, msg.as_ref());
        eprintln!("{line}");
        if let Some(mut f) = self.log.as_ref() {
            let now = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string();
            let _ = writeln!(f, "{now} {line}");
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// What `<dir>` holds for a suite.
#[derive(Clone, Debug, PartialEq)]
pub enum Detected {
    /// Results in the format the suite's report reads.
    Current,
    /// Results the report cannot pool, and why.
    Unusable(String),
    /// No results of this suite.
    Absent,
}

/// The tables of one suite, regenerated from data.
pub struct SuiteTables {
    /// The full section (tables, method, exclusions, sessions): `<out>/<key>.md`.
    pub section: String,
    /// What goes between the README markers.
    pub readme: String,
    /// Preconditions of the scenario that do not hold (empty: all hold).
    pub failures: Vec<String>,
}

/// A suite whose tables `experiments report` regenerates from its CSVs. E1 implements it;
/// E0 and E2 plug in by implementing it and being added to `main.rs`'s list.
pub trait SuiteReport {
    /// The README block (`<!-- results:KEY -->`) and the suite's name on the command line.
    fn key(&self) -> &'static str;
    fn detect(&self, dir: &Path) -> Detected;
    /// Pools the directories' runs, checks the preconditions, writes plots into `out` (links
    /// in the Markdown are relative to `link_base`) and renders the tables.
    fn report(
        &self,
        dirs: &[PathBuf],
        out: &Path,
        link_base: &Path,
        opts: &ReportOptions,
    ) -> anyhow::Result<SuiteTables>;
}

#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// Runs each point needs after exclusions (None: the suite's default).
    pub min_runs: Option<u32>,
}

/// Whether a results directory is a `--quick` one (smoke-test numbers, never pooled unasked).
pub fn is_quick_dir(dir: &Path) -> bool {
    dir.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with("-quick"))
}

/// `experiments report`: for each suite, the directories to pool (those given, or every
/// non-quick directory under `results_root` holding the suite's results), the tables and
/// plots (into `out`, default `<results_root>/pooled`; each section also printed), the
/// preconditions (any failing: an error, and the README is left alone), then the README
/// block. Returns the sections.
pub fn report_command(
    suites: &[&dyn SuiteReport],
    dirs: &[PathBuf],
    results_root: &Path,
    out: Option<&Path>,
    readme: Option<&Path>,
    opts: &ReportOptions,
) -> anyhow::Result<String> {
    let mut errors = Vec::new();
    let mut all = String::new();
    let explicit = !dirs.is_empty();
    let candidates: Vec<PathBuf> = if explicit {
        dirs.to_vec()
    } else {
        let mut v: Vec<PathBuf> = fs::read_dir(results_root)
            .with_context(|| format!("read {}", results_root.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        v.sort();
        v
    };
    for suite in suites {
        let key = suite.key();
        let mut use_dirs = Vec::new();
        for d in &candidates {
            match suite.detect(d) {
                Detected::Current if !explicit && is_quick_dir(d) => eprintln!(
                    "{key}: not pooled: {} (--quick results are never pooled unless named)",
                    d.display()
                ),
                Detected::Current => use_dirs.push(d.clone()),
                Detected::Unusable(why) if explicit => {
                    errors.push(format!("{key}: {}: {why}", d.display()))
                }
                Detected::Unusable(why) => {
                    eprintln!("{key}: not pooled: {}: {why}", d.display())
                }
                Detected::Absent if explicit && suites.len() == 1 => {
                    errors.push(format!("{key}: {} has no {key} results", d.display()))
                }
                Detected::Absent => {}
            }
        }
        if use_dirs.is_empty() {
            errors.push(format!(
                "{key}: no results to report (looked in {})",
                if explicit {
                    "the directories given".to_string()
                } else {
                    results_root.display().to_string()
                }
            ));
            continue;
        }
        let quick = use_dirs.iter().any(|d| is_quick_dir(d));
        let out_dir = match (out, quick) {
            (Some(o), _) => o.to_path_buf(),
            (None, true) => use_dirs[0].clone(),
            (None, false) => results_root.join("pooled"),
        };
        fs::create_dir_all(&out_dir).with_context(|| format!("mkdir {}", out_dir.display()))?;
        let link_base = readme
            .and_then(Path::parent)
            .map_or_else(|| out_dir.clone(), Path::to_path_buf);
        let tables = suite.report(&use_dirs, &out_dir, &link_base, opts)?;
        let md_path = out_dir.join(format!("{key}.md"));
        fs::write(&md_path, &tables.section)
            .with_context(|| format!("write {}", md_path.display()))?;
        eprintln!("{key}: wrote {}", md_path.display());
        // The tables are shown even when a precondition fails below.
        println!("{}", tables.section);
        all.push_str(&tables.section);
        if !tables.failures.is_empty() {
            for f in &tables.failures {
                eprintln!("{key}: PRECONDITION FAILED: {f}");
            }
            errors.push(format!(
                "{key}: {} precondition(s) do not hold (listed above){}",
                tables.failures.len(),
                if readme.is_some() {
                    "; README not rewritten"
                } else {
                    ""
                }
            ));
            continue;
        }
        if let Some(readme) = readme {
            if quick {
                errors.push(format!(
                    "{key}: --quick results are not written into the README"
                ));
            } else {
                update_readme(readme, key, &tables.readme)?;
                eprintln!("{key}: rewrote its block in {}", readme.display());
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(all)
}

/// A path as a Markdown link from `base` (relative when below it).
pub fn link_from(base: &Path, target: &Path) -> String {
    target
        .strip_prefix(base)
        .unwrap_or(target)
        .display()
        .to_string()
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
    fn csv_round_trips_and_reports_cut_rows() {
        let text = to_csv(
            &["a", "b", "c"],
            &[
                vec!["1".into(), "x,y".into(), "say \"hi\"".into()],
                vec!["2".into(), "two\nlines".into(), "".into()],
            ],
        );
        let t = parse_csv(&(text.clone() + "3,cut"));
        assert_eq!(t.header, ["a", "b", "c"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0], ["1", "x,y", "say \"hi\""]);
        assert_eq!(t.rows[1], ["2", "two\nlines", ""]);
        assert_eq!(t.get(&t.rows[0], "b"), "x,y");
        assert_eq!(t.get(&t.rows[0], "zz"), "");
        assert_eq!(t.bad_lines, vec![(5, "3,cut".to_string())]);
        assert_eq!(parse_csv("a,b\r\n1,2\r\n").rows, vec![vec!["1", "2"]]);
    }

    #[test]
    fn appends_rows_and_refuses_another_format() {
        let dir = std::env::temp_dir().join(format!("bsc-report-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        let p = dir.join("x.csv");
        append_csv_row(&p, &["a", "b"], &["1".into(), "2".into()]).expect("first");
        append_csv_row(&p, &["a", "b"], &["3".into(), "4".into()]).expect("second");
        assert_eq!(fs::read_to_string(&p).expect("read"), "a,b\n1,2\n3,4\n");
        // A row cut by a crash: the next row starts on a new line; the reader reports it.
        fs::write(&p, "a,b\n1,2\n3").expect("write");
        append_csv_row(&p, &["a", "b"], &["5".into(), "6".into()]).expect("after a cut row");
        let t = read_csv(&p).expect("read");
        assert_eq!(t.rows, vec![vec!["1", "2"], vec!["5", "6"]]);
        assert_eq!(t.bad_lines.len(), 1);
        assert!(append_csv_row(&p, &["a", "c"], &["1".into(), "2".into()]).is_err());
        let _ = fs::remove_dir_all(&dir);
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
