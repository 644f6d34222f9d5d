//! Writing CPU settings: [`apply`] a pod-level [`Setting`] and its containers' settings in
//! the order the kernel accepts, with read-back.
//!
//! # Why the order
//!
//! On cgroup v1 the kernel keeps every limited cgroup's quota (per period) at or below its
//! nearest limited ancestor's: writing a container quota above its pod-level quota, or a
//! pod-level quota below a container's, fails with `EINVAL` (`tg_cfs_schedulable_down` in
//! `kernel/sched/core.c`). So when the pod-level quota **grows**, it is written **first** (the
//! containers then have room to grow); when it **shrinks**, it is written **last** (after the
//! containers came down under it). Containers are siblings and do not constrain each other.
//! Shares have no such rule; a cgroup's shares are written right after its quota (a pod-level
//! setting whose quota does not grow goes after the containers). cgroup v2
//! accepts any order (a parent's `cpu.max` simply also applies), and the same order is used.
//!
//! # Failure
//!
//! Everything is read and validated before the first write: a missing cgroup, an unreadable
//! file or a value the kernel would refuse or clamp stops `apply` with nothing written. Then
//! each file is written and read back. At the first write that fails, or reads back something
//! else, `apply` stops and returns [`CgroupError::Apply`]: the failure, naming the file, and
//! every file already written, in order, with the value now in force. Nothing after it is
//! touched and nothing is rolled back — the caller decides (for example by applying the
//! previous settings, which `written[].before` holds).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::convert::{
    MAX_SHARES, MAX_WEIGHT, MIN_QUOTA_US, MIN_SHARES, MIN_WEIGHT, Quota, cpu_max_text,
    shares_to_weight,
};
use super::layout::{Cgroup, Hierarchy};
use super::read::{CpuLimits, read_text};
use super::{CgroupError, parse};

/// A wanted CPU setting for one cgroup. `None` fields are left untouched. The period is never
/// changed: a quota is µs per the cgroup's own period (see [`super::quota_for`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Setting {
    pub quota_us: Option<Quota>,
    /// v1 shares (2–262 144); on v2 written as `cpu.weight` = [`shares_to_weight`].
    pub shares: Option<u64>,
    /// v2 only: an exact `cpu.weight` (1–10 000), written instead of the weight converted from
    /// `shares`. For restoring what [`Cgroup::limits`] read (the kubelet's weight → shares →
    /// weight conversion loses one step); an error on v1.
    pub weight: Option<u64>,
}

impl Setting {
    /// The setting that puts `limits` back (what [`Cgroup::limits`] read before a change):
    /// quota, and shares (v1) or the raw weight (v2). Restoring is exact on both hierarchies.
    pub fn from_limits(limits: &CpuLimits) -> Setting {
        Setting {
            quota_us: Some(limits.quota()),
            shares: Some(limits.shares),
            weight: limits.weight,
        }
    }
}

/// One file `apply` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub file: PathBuf,
    /// The file's content before (trimmed).
    pub before: String,
    /// Its content after, as read back (trimmed). When the read-back itself failed (the
    /// failure is then a read error of this file), the value that was written.
    pub after: String,
}

/// What [`apply`] changed, in write order. Files that already held the wanted value are
/// neither written nor listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub written: Vec<Written>,
}

/// Writes the pod-level setting and the containers' settings in the order the kernel accepts
/// (see the module docs), reading back every file written. `containers` must be cgroups below
/// `pod`.
pub fn apply(
    pod: &Cgroup,
    pod_setting: &Setting,
    containers: &[(&Cgroup, Setting)],
) -> Result<Applied, CgroupError> {
    let pod_plan = plan(pod, pod_setting)?;
    let mut container_steps = Vec::new();
    for (container, setting) in containers {
        if !container.is_below(pod) {
            return Err(CgroupError::Invalid {
                path: container.path().to_path_buf(),
                value: "a container setting".to_string(),
                why: format!("it is not below the pod cgroup {}", pod.path().display()),
            });
        }
        container_steps.extend(plan(container, setting)?.steps());
    }
    let pod_first = pod_plan.grows;
    let pod_steps = pod_plan.steps();
    let ordered: Vec<Step> = if pod_first {
        pod_steps.into_iter().chain(container_steps).collect()
    } else {
        container_steps.into_iter().chain(pod_steps).collect()
    };
    execute(ordered)
}

/// Runs the steps in order; stops at the first failure (see the module docs).
fn execute(steps: Vec<Step>) -> Result<Applied, CgroupError> {
    let mut applied = Applied::default();
    for step in steps {
        if let Err(failed) = step.run(&mut applied.written) {
            return Err(CgroupError::Apply {
                failed: Box::new(failed),
                written: applied.written,
            });
        }
    }
    Ok(applied)
}

/// One file to write.
struct Step {
    file: PathBuf,
    text: String,
    before: String,
}

impl Step {
    /// Writes, reads back, and records the file in `written` once the write succeeded.
    fn run(self, written: &mut Vec<Written>) -> Result<(), CgroupError> {
        write_file(&self.file, &self.text)?;
        let (after, result) = match read_text(&self.file) {
            Ok(got) if got.trim() == self.text => (self.text.clone(), Ok(())),
            Ok(got) => (
                got.trim().to_string(),
                Err(CgroupError::ReadBack {
                    path: self.file.clone(),
                    wrote: self.text.clone(),
                    got: got.trim().to_string(),
                }),
            ),
            Err(e) => (self.text.clone(), Err(e)),
        };
        written.push(Written {
            file: self.file,
            before: self.before,
            after,
        });
        result
    }
}

/// The steps for one cgroup, and whether its quota grows.
struct Plan {
    quota: Option<Step>,
    shares: Option<Step>,
    grows: bool,
}

impl Plan {
    fn steps(self) -> impl Iterator<Item = Step> {
        self.quota.into_iter().chain(self.shares)
    }
}

/// Reads the current values, validates the wanted ones, and keeps only real changes.
fn plan(cgroup: &Cgroup, setting: &Setting) -> Result<Plan, CgroupError> {
    let (quota, grows) = match setting.quota_us {
        Some(wanted) => plan_quota(cgroup, wanted)?,
        None => (None, false),
    };
    let shares = plan_shares(cgroup, setting)?;
    Ok(Plan {
        quota,
        shares,
        grows,
    })
}

fn plan_quota(cgroup: &Cgroup, wanted: Quota) -> Result<(Option<Step>, bool), CgroupError> {
    let file = cgroup.quota_file();
    if let Quota::Limited(us) = wanted
        && us < MIN_QUOTA_US
    {
        return Err(CgroupError::Invalid {
            path: file,
            value: us.to_string(),
            why: format!(
                "the kernel's smallest quota is {MIN_QUOTA_US} us (Quota::Unlimited for none)"
            ),
        });
    }
    let before = read_text(&file)?.trim().to_string();
    let bad = |what| CgroupError::parse(&file, what);
    let (current, text) = match cgroup.hierarchy() {
        Hierarchy::V1 => (parse::quota_v1(&before).map_err(bad)?, wanted.v1_text()),
        Hierarchy::V2 => {
            let (current, period) = parse::cpu_max(&before).map_err(bad)?;
            (current, cpu_max_text(wanted, period))
        }
    };
    if current == wanted {
        return Ok((None, false));
    }
    let grows = wanted.exceeds(current);
    Ok((Some(Step { file, text, before }), grows))
}

/// The shares step: v1 `cpu.shares`, v2 `cpu.weight` (the exact weight if given, else the
/// kubelet's conversion of the shares).
fn plan_shares(cgroup: &Cgroup, setting: &Setting) -> Result<Option<Step>, CgroupError> {
    let file = cgroup.shares_file();
    let invalid = |value: u64, why: String| CgroupError::Invalid {
        path: file.clone(),
        value: value.to_string(),
        why,
    };
    if let Some(shares) = setting.shares
        && !(MIN_SHARES..=MAX_SHARES).contains(&shares)
    {
        let why =
            format!("shares must be {MIN_SHARES}..={MAX_SHARES} (the kernel clamps silently)");
        return Err(invalid(shares, why));
    }
    let wanted = match (cgroup.hierarchy(), setting.weight, setting.shares) {
        (Hierarchy::V1, Some(weight), _) => {
            return Err(invalid(
                weight,
                "cpu.weight is cgroup v2 only; set shares".into(),
            ));
        }
        (Hierarchy::V2, Some(weight), _) if !(MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) => {
            return Err(invalid(
                weight,
                format!("weight must be {MIN_WEIGHT}..={MAX_WEIGHT}"),
            ));
        }
        (Hierarchy::V2, Some(weight), _) => weight,
        (Hierarchy::V2, None, Some(shares)) => shares_to_weight(shares),
        (Hierarchy::V1, None, Some(shares)) => shares,
        (_, None, None) => return Ok(None),
    };
    let before = read_text(&file)?.trim().to_string();
    let current = parse::single_u64(&before).map_err(|what| CgroupError::parse(&file, what))?;
    Ok((current != wanted).then(|| Step {
        file,
        text: wanted.to_string(),
        before,
    }))
}

/// Writes `text` to an existing file (never creates one: a cgroup that is gone gives
/// `ENOENT`, not a stray file).
fn write_file(path: &Path, text: &str) -> Result<(), CgroupError> {
    let err = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: text.to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Tree;
    use super::super::layout::{Driver, Layout};
    use super::*;

    fn limited(us: u64) -> Setting {
        Setting {
            quota_us: Some(Quota::Limited(us)),
            ..Setting::default()
        }
    }

    fn files(applied: &[Written], root: &Path) -> Vec<String> {
        applied
            .iter()
            .map(|w| {
                format!(
                    "{}={}",
                    w.file.strip_prefix(root).unwrap_or(&w.file).display(),
                    w.after
                )
            })
            .collect()
    }

    fn v1_pod() -> (Tree, Layout) {
        let t = Tree::hybrid_v1("write-v1");
        t.v1_group("pod", "50000", 614, 0);
        t.v1_group("pod/c1", "20000", 102, 0);
        t.v1_group("pod/c2", "30000", 512, 0);
        let l = Layout::detect(t.root(), Driver::Cgroupfs).expect("detects");
        (t, l)
    }

    #[test]
    fn grows_pod_first_and_shrinks_pod_last() {
        let (t, l) = v1_pod();
        let pod = Cgroup::at(&l, "pod");
        let c1 = pod.child("c1");
        let c2 = pod.child("c2");
        let grow = apply(
            &pod,
            &limited(100_000),
            &[(&c1, limited(60_000)), (&c2, limited(40_000))],
        )
        .expect("applies");
        assert_eq!(
            files(&grow.written, t.root()),
            [
                "cpu/pod/cpu.cfs_quota_us=100000",
                "cpu/pod/c1/cpu.cfs_quota_us=60000",
                "cpu/pod/c2/cpu.cfs_quota_us=40000"
            ]
        );
        assert_eq!(grow.written[0].before, "50000");
        let shrink = apply(
            &pod,
            &Setting {
                quota_us: Some(Quota::Limited(30_000)),
                shares: Some(307),
                weight: None,
            },
            &[(&c1, limited(10_000)), (&c2, limited(20_000))],
        )
        .expect("applies");
        assert_eq!(
            files(&shrink.written, t.root()),
            [
                "cpu/pod/c1/cpu.cfs_quota_us=10000",
                "cpu/pod/c2/cpu.cfs_quota_us=20000",
                "cpu/pod/cpu.cfs_quota_us=30000",
                "cpu/pod/cpu.shares=307"
            ]
        );
        assert_eq!(t.read("cpu/pod/cpu.cfs_quota_us"), "30000");
        // Unlimited is the largest quota: growing to it goes first.
        let unlimit = apply(
            &pod,
            &Setting {
                quota_us: Some(Quota::Unlimited),
                ..Setting::default()
            },
            &[(&c1, limited(90_000))],
        )
        .expect("applies");
        assert_eq!(
            files(&unlimit.written, t.root()),
            [
                "cpu/pod/cpu.cfs_quota_us=-1",
                "cpu/pod/c1/cpu.cfs_quota_us=90000"
            ]
        );
    }

    #[test]
    fn unchanged_values_are_not_written() {
        let (t, l) = v1_pod();
        let pod = Cgroup::at(&l, "pod");
        let c1 = pod.child("c1");
        let same = Setting {
            quota_us: Some(Quota::Limited(20_000)),
            shares: Some(102),
            weight: None,
        };
        let applied = apply(&pod, &Setting::default(), &[(&c1, same)]).expect("applies");
        assert!(applied.written.is_empty());
        // Only shares change: written, pod untouched.
        let applied = apply(
            &pod,
            &Setting::default(),
            &[(
                &c1,
                Setting {
                    shares: Some(1024),
                    ..Setting::default()
                },
            )],
        )
        .expect("applies");
        assert_eq!(
            files(&applied.written, t.root()),
            ["cpu/pod/c1/cpu.shares=1024"]
        );
    }

    #[test]
    fn refuses_before_writing_anything() {
        let (t, l) = v1_pod();
        let pod = Cgroup::at(&l, "pod");
        let c1 = pod.child("c1");
        let gone = pod.child("gone");
        let e = apply(&pod, &limited(90_000), &[(&c1, limited(999))]).expect_err("too small");
        assert!(e.to_string().contains("refusing to write 999"), "{e}");
        assert!(e.to_string().contains("pod/c1/cpu.cfs_quota_us"), "{e}");
        let e = apply(
            &pod,
            &Setting {
                shares: Some(1),
                ..Setting::default()
            },
            &[],
        )
        .expect_err("shares");
        assert!(e.to_string().contains("clamp"), "{e}");
        let weight = Setting {
            weight: Some(100),
            ..Setting::default()
        };
        let e = apply(&pod, &weight, &[]).expect_err("weight on v1");
        assert!(e.to_string().contains("cgroup v2 only"), "{e}");
        let e = apply(&pod, &limited(90_000), &[(&gone, limited(10_000))]).expect_err("gone");
        assert!(e.is_gone(), "{e}");
        assert!(e.written().is_empty());
        let e = apply(&c1, &limited(90_000), &[(&pod, limited(10_000))]).expect_err("not below");
        assert!(e.to_string().contains("not below the pod cgroup"), "{e}");
        assert_eq!(t.read("cpu/pod/cpu.cfs_quota_us"), "50000\n", "untouched");
        assert_eq!(
            t.read("cpu/pod/c1/cpu.cfs_quota_us"),
            "20000\n",
            "untouched"
        );
    }

    #[test]
    fn stops_at_the_first_failure_and_reports_what_is_in_force() {
        let (t, _l) = v1_pod();
        let step = |rel: &str, text: &str| Step {
            file: t.root().join(rel),
            text: text.to_string(),
            before: "?".to_string(),
        };
        // The second file cannot be written (a directory: EISDIR); the third is never reached.
        t.dir("cpu/pod/c2/not-a-file");
        let e = execute(vec![
            step("cpu/pod/c1/cpu.cfs_quota_us", "60000"),
            step("cpu/pod/c2/not-a-file", "70000"),
            step("cpu/pod/cpu.cfs_quota_us", "90000"),
        ])
        .expect_err("stops");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "write 70000 to {}: ",
                t.root().join("cpu/pod/c2/not-a-file").display()
            )),
            "{text}"
        );
        assert!(text.contains("(EISDIR)"), "{text}");
        assert!(
            text.contains("already in force (not rolled back)"),
            "{text}"
        );
        assert_eq!(
            files(e.written(), t.root()),
            ["cpu/pod/c1/cpu.cfs_quota_us=60000"]
        );
        assert_eq!(t.read("cpu/pod/c1/cpu.cfs_quota_us"), "60000", "kept");
        assert_eq!(t.read("cpu/pod/cpu.cfs_quota_us"), "50000\n", "untouched");
    }

    #[test]
    fn v2_writes_cpu_max_and_weight() {
        let t = Tree::v2("write-v2");
        t.v2_group("kubepods.slice/p.slice", "50000 100000", 20);
        t.v2_group("kubepods.slice/p.slice/c.scope", "20000 100000", 4);
        let l = Layout::detect(t.root(), Driver::Systemd).expect("detects");
        let pod = Cgroup::at(&l, "kubepods.slice/p.slice");
        let c = pod.child("c.scope");
        let original_pod = pod.limits().expect("reads");
        let original_c = c.limits().expect("reads");
        let applied = apply(
            &pod,
            &Setting {
                quota_us: Some(Quota::Unlimited),
                shares: Some(1024),
                weight: None,
            },
            &[(
                &c,
                Setting {
                    quota_us: Some(Quota::Limited(150_000)),
                    shares: Some(1024),
                    weight: None,
                },
            )],
        )
        .expect("applies");
        assert_eq!(
            files(&applied.written, t.root()),
            [
                "kubepods.slice/p.slice/cpu.max=max 100000",
                "kubepods.slice/p.slice/cpu.weight=39",
                "kubepods.slice/p.slice/c.scope/cpu.max=150000 100000",
                "kubepods.slice/p.slice/c.scope/cpu.weight=39"
            ]
        );
        // Restore: exactly the original text, weights included.
        apply(
            &pod,
            &Setting::from_limits(&original_pod),
            &[(&c, Setting::from_limits(&original_c))],
        )
        .expect("restores");
        assert_eq!(t.read("kubepods.slice/p.slice/cpu.max"), "50000 100000");
        assert_eq!(t.read("kubepods.slice/p.slice/cpu.weight"), "20");
        assert_eq!(
            t.read("kubepods.slice/p.slice/c.scope/cpu.max"),
            "20000 100000"
        );
        assert_eq!(t.read("kubepods.slice/p.slice/c.scope/cpu.weight"), "4");
        let bad = Setting {
            weight: Some(10_001),
            ..Setting::default()
        };
        let e = apply(&pod, &bad, &[]).expect_err("weight range");
        assert!(e.to_string().contains("1..=10000"), "{e}");
    }

    #[test]
    fn a_write_to_a_missing_file_never_creates_it() {
        let (t, l) = v1_pod();
        let pod = Cgroup::at(&l, "pod");
        let path = pod.path().join("no-such-file");
        let e = write_file(&path, "1").expect_err("missing");
        assert!(e.is_gone(), "{e}");
        assert!(e.to_string().starts_with("write 1 to "), "{e}");
        assert!(!path.exists());
        drop(t);
    }
}
