//! E1's plan, pure: the arms (what is done to the compile), rounds in a seeded random order,
//! the exclusion rule for disturbed builds (fixed when the plan is made and stored with it),
//! which build comes next (so that a run resumes where it stopped), and how long it takes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::stats::SplitMix64;

/// How the compile is given its share of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arm {
    /// No limit at all (`cpu.cfs_quota_us` = −1): the baseline every round is measured against.
    Unlimited,
    /// A CFS quota of `pct` % of the node per 100 ms period; `burst`: `cpu.cfs_burst_us` = the
    /// quota (the kernel's maximum), else 0.
    Quota { pct: u32, burst: bool },
    /// No quota; the compile confined to one core (cpuset), still `make -j<cores>`.
    Cpuset1,
    /// No quota, all cores, but `make -j1`.
    Jobs1,
}

impl Arm {
    /// The arms of a full E1, in table order.
    pub fn all() -> Vec<Arm> {
        let mut v = vec![Arm::Unlimited];
        for pct in [100, 75, 50, 25] {
            for burst in [false, true] {
                v.push(Arm::Quota { pct, burst });
            }
        }
        v.push(Arm::Cpuset1);
        v.push(Arm::Jobs1);
        v
    }

    /// `--quick`: one of each kind, at 50 % (the point the lab's question is about).
    pub fn quick() -> Vec<Arm> {
        vec![
            Arm::Unlimited,
            Arm::Quota {
                pct: 50,
                burst: false,
            },
            Arm::Quota {
                pct: 50,
                burst: true,
            },
            Arm::Cpuset1,
            Arm::Jobs1,
        ]
    }

    /// Stable name, as written in the CSV and the plan.
    pub fn id(self) -> String {
        match self {
            Arm::Unlimited => "unlimited".into(),
            Arm::Quota { pct, burst: false } => format!("quota-{pct}"),
            Arm::Quota { pct, burst: true } => format!("quota-{pct}-burst"),
            Arm::Cpuset1 => "cpuset-1".into(),
            Arm::Jobs1 => "jobs-1".into(),
        }
    }

    pub fn parse(s: &str) -> Option<Arm> {
        match s {
            "unlimited" => Some(Arm::Unlimited),
            "cpuset-1" => Some(Arm::Cpuset1),
            "jobs-1" => Some(Arm::Jobs1),
            _ => {
                let rest = s.strip_prefix("quota-")?;
                let (pct, burst) = match rest.strip_suffix("-burst") {
                    Some(p) => (p, true),
                    None => (rest, false),
                };
                let pct: u32 = pct.parse().ok()?;
                (1..=100)
                    .contains(&pct)
                    .then_some(Arm::Quota { pct, burst })
            }
        }
    }

    /// The share of the node this arm gives the compile (1 = all cores).
    pub fn node_fraction(self, cores: u32) -> f64 {
        match self {
            Arm::Unlimited => 1.0,
            Arm::Quota { pct, .. } => f64::from(pct) / 100.0,
            Arm::Cpuset1 | Arm::Jobs1 => 1.0 / f64::from(cores.max(1)),
        }
    }

    pub fn jobs(self, cores: u32) -> u32 {
        match self {
            Arm::Jobs1 => 1,
            _ => cores,
        }
    }

    /// What the table calls it.
    pub fn label(self, cores: u32) -> String {
        match self {
            Arm::Unlimited => format!("unlimited (quota −1), make -j{cores}"),
            Arm::Quota { pct, burst: false } => format!("CFS quota {pct} %"),
            Arm::Quota { pct, burst: true } => format!("CFS quota {pct} % + cfs_burst = quota"),
            Arm::Cpuset1 => format!("cpuset: 1 core, make -j{cores}"),
            Arm::Jobs1 => "make -j1, unlimited".into(),
        }
    }
}

impl fmt::Display for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// When a build counts as disturbed and is excluded. Fixed when the plan is made, stored in the
/// plan, printed with every table.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExclusionRule {
    /// Steal time (the hypervisor running someone else on our vCPUs) during the build, as % of
    /// the node's CPU time (cores × the build's window).
    pub max_steal_pct: f64,
    /// CPU used by every process outside the compile's cgroup during the build (the host's
    /// busy time minus the compile's CPU time), as % of the node's CPU time.
    pub max_other_pct: f64,
}

impl ExclusionRule {
    pub const DEFAULT: ExclusionRule = ExclusionRule {
        max_steal_pct: 2.0,
        max_other_pct: 5.0,
    };

    /// Why a build is disturbed (None: it counts). Unknown steal or other CPU also excludes.
    pub fn disturbed(
        &self,
        cores: u32,
        window_s: f64,
        steal_s: f64,
        other_cpu_s: f64,
    ) -> Option<String> {
        let node_s = f64::from(cores) * window_s;
        if node_s.is_nan() || node_s <= 0.0 {
            return Some("no measurement window".into());
        }
        let mut why = Vec::new();
        if !steal_s.is_finite() {
            why.push("steal time unknown".to_string());
        } else if steal_s / node_s * 100.0 > self.max_steal_pct {
            why.push(format!(
                "steal {steal_s:.1} s = {:.1} % of the node's CPU time (limit {} %)",
                steal_s / node_s * 100.0,
                self.max_steal_pct
            ));
        }
        if !other_cpu_s.is_finite() {
            why.push("other processes' CPU unknown".to_string());
        } else if other_cpu_s / node_s * 100.0 > self.max_other_pct {
            why.push(format!(
                "other processes used {other_cpu_s:.1} CPU-s = {:.1} % of the node (limit {} %)",
                other_cpu_s / node_s * 100.0,
                self.max_other_pct
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    pub fn describe(&self) -> String {
        format!(
            "a build is excluded when, during it, the hypervisor stole more than {} % of the node's \
             CPU time (/proc/stat steal), or processes outside the compile's cgroup used more than {} % \
             of it (host busy time − the compile's CPU time); a round whose unlimited baseline is \
             excluded cannot be paired, so its other builds are excluded too",
            self.max_steal_pct, self.max_other_pct
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub round: u32,
    /// `cli`, `full` or `small` (workload::Profile names).
    pub profile: String,
    /// Arm ids in the order they run.
    pub arms: Vec<String>,
}

/// The whole plan of an E1 run, written to `e1-plan.json` before the first build.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub seed: u64,
    pub cores: u32,
    pub period_us: u64,
    pub quick: bool,
    /// The core the cpuset arm uses.
    pub cpuset_cpu: u32,
    pub rule: ExclusionRule,
    /// A disturbed build is repeated at the end of its round, at most this often per arm...
    pub max_repeats: u32,
    /// ...and at most this many repeats in all.
    pub repeat_budget: u32,
    /// Runs per point (after exclusions) the tables need, per profile.
    pub min_runs: BTreeMap<String, u32>,
    pub rounds: Vec<Round>,
}

pub const PLAN_FORMAT: u32 = 1;

impl Plan {
    /// `rounds` of `profile` then `extra_rounds` of `extra_profile`, each round every arm once,
    /// in an order drawn from `seed` (each round its own shuffle).
    pub fn new(
        seed: u64,
        cores: u32,
        period_us: u64,
        quick: bool,
        arms: &[Arm],
        rounds: &[(String, u32)],
    ) -> Plan {
        let mut rng = SplitMix64::new(seed);
        let mut out = Vec::new();
        let mut min_runs = BTreeMap::new();
        for (profile, n) in rounds {
            for _ in 0..*n {
                let mut order: Vec<Arm> = arms.to_vec();
                rng.shuffle(&mut order);
                out.push(Round {
                    round: out.len() as u32 + 1,
                    profile: profile.clone(),
                    arms: order.iter().map(|a| a.id()).collect(),
                });
            }
            *min_runs.entry(profile.clone()).or_insert(0) += *n;
        }
        let planned: usize = out.iter().map(|r| r.arms.len()).sum();
        Plan {
            format: PLAN_FORMAT,
            seed,
            cores,
            period_us,
            quick,
            cpuset_cpu: cores.saturating_sub(1),
            rule: ExclusionRule::DEFAULT,
            max_repeats: if quick { 0 } else { 2 },
            repeat_budget: if quick { 0 } else { planned.div_ceil(4) as u32 },
            min_runs,
            rounds: out,
        }
    }

    pub fn planned_builds(&self) -> usize {
        self.rounds.iter().map(|r| r.arms.len()).sum()
    }

    /// Checks the plan names only known arms and profiles.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.format != PLAN_FORMAT {
            anyhow::bail!(
                "e1-plan.json has format {}, this harness reads {PLAN_FORMAT}",
                self.format
            );
        }
        for r in &self.rounds {
            for a in &r.arms {
                if Arm::parse(a).is_none() {
                    anyhow::bail!("e1-plan.json: round {} has an unknown arm {a:?}", r.round);
                }
            }
            if !matches!(r.profile.as_str(), "cli" | "full" | "small") {
                anyhow::bail!(
                    "e1-plan.json: round {} has an unknown profile {:?}",
                    r.round,
                    r.profile
                );
            }
        }
        Ok(())
    }
}

/// What the scheduler needs to know about a finished build.
#[derive(Clone, Debug, PartialEq)]
pub struct Done {
    pub round: u32,
    pub arm: Arm,
    /// Disturbed by the plan's rule (its own measurements, not its round's baseline).
    pub disturbed: bool,
}

/// The next build to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub round: u32,
    pub profile: String,
    pub arm: Arm,
    /// 0 for the planned build, 1.. for repeats of a disturbed one.
    pub repeat: u32,
}

/// The next build, from the plan and what is done: rounds in order; in a round, its arms in the
/// planned order, then repeats (a build all of whose attempts so far were disturbed is tried
/// again, up to `max_repeats` times per arm and `repeat_budget` in all). None: all done.
pub fn next_job(plan: &Plan, done: &[Done]) -> Option<Job> {
    let mut counts: BTreeMap<(u32, Arm), (u32, u32)> = BTreeMap::new(); // (attempts, clean)
    for d in done {
        let e = counts.entry((d.round, d.arm)).or_insert((0, 0));
        e.0 += 1;
        if !d.disturbed {
            e.1 += 1;
        }
    }
    let repeats_used: u32 = counts.values().map(|(n, _)| n.saturating_sub(1)).sum();
    for r in &plan.rounds {
        let arms: Vec<Arm> = r.arms.iter().filter_map(|a| Arm::parse(a)).collect();
        if let Some(arm) = arms.iter().find(|a| !counts.contains_key(&(r.round, **a))) {
            return Some(Job {
                round: r.round,
                profile: r.profile.clone(),
                arm: *arm,
                repeat: 0,
            });
        }
        if repeats_used < plan.repeat_budget {
            for arm in &arms {
                let (n, clean) = counts.get(&(r.round, *arm)).copied().unwrap_or((0, 0));
                if clean == 0 && n <= plan.max_repeats {
                    return Some(Job {
                        round: r.round,
                        profile: r.profile.clone(),
                        arm: *arm,
                        repeat: n,
                    });
                }
            }
        }
    }
    None
}

/// Nominal full-node makespan of a profile on this 2-core machine, idle (s): the estimate
/// before a warm-up build has measured it.
pub fn nominal_build_s(profile: &str) -> f64 {
    match profile {
        "full" => 80.0,
        "small" => 8.0,
        _ => 27.0,
    }
}

/// Time per build outside the measurement (copying the sources, the speed probe, cleaning), s.
pub const OVERHEAD_S: f64 = 3.0;

/// Seconds the builds not yet done will take: each its profile's full-node makespan divided by
/// the arm's share of the node, plus the overhead. `build_s` gives the full-node makespan of a
/// profile (measured or nominal). Repeats of disturbed builds come on top.
pub fn remaining_secs(plan: &Plan, done: &[Done], build_s: &dyn Fn(&str) -> f64) -> f64 {
    let mut finished: BTreeMap<(u32, Arm), ()> = BTreeMap::new();
    for d in done {
        finished.insert((d.round, d.arm), ());
    }
    plan.rounds
        .iter()
        .flat_map(|r| {
            r.arms
                .iter()
                .filter_map(|a| Arm::parse(a))
                .filter(|a| !finished.contains_key(&(r.round, *a)))
                .map(|a| build_s(&r.profile) / a.node_fraction(plan.cores) + OVERHEAD_S)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64, quick: bool) -> Plan {
        let arms = if quick { Arm::quick() } else { Arm::all() };
        Plan::new(
            seed,
            2,
            100_000,
            quick,
            &arms,
            &[("cli".to_string(), 5), ("full".to_string(), 1)],
        )
    }

    #[test]
    fn arm_ids_round_trip_and_fractions() {
        for a in Arm::all() {
            assert_eq!(Arm::parse(&a.id()), Some(a), "{a}");
        }
        assert_eq!(Arm::parse("quota-0"), None);
        assert_eq!(Arm::parse("quota-x-burst"), None);
        assert_eq!(Arm::parse("nope"), None);
        assert_eq!(Arm::Cpuset1.node_fraction(2), 0.5);
        assert_eq!(Arm::Jobs1.node_fraction(2), 0.5);
        assert_eq!(Arm::Jobs1.jobs(2), 1);
        assert_eq!(Arm::Cpuset1.jobs(2), 2);
        assert_eq!(
            Arm::Quota {
                pct: 75,
                burst: true
            }
            .node_fraction(2),
            0.75
        );
        assert_eq!(Arm::all().len(), 11);
    }

    #[test]
    fn every_round_is_a_permutation_in_an_order_fixed_by_the_seed() {
        let p = plan(7, false);
        assert_eq!(p, plan(7, false), "same seed, same plan");
        assert_ne!(p.rounds, plan(8, false).rounds);
        assert_eq!(p.rounds.len(), 6);
        let ids: Vec<String> = Arm::all().iter().map(|a| a.id()).collect();
        for r in &p.rounds {
            let mut got = r.arms.clone();
            got.sort();
            let mut want = ids.clone();
            want.sort();
            assert_eq!(got, want, "round {} runs every arm once", r.round);
        }
        // Rounds are shuffled independently (not all in one order).
        assert!(p.rounds.windows(2).any(|w| w[0].arms != w[1].arms));
        assert_eq!(p.rounds[5].profile, "full");
        assert_eq!(p.min_runs.get("cli"), Some(&5));
        assert_eq!(p.min_runs.get("full"), Some(&1));
        assert_eq!(p.planned_builds(), 66);
        assert_eq!(p.repeat_budget, 17);
        p.validate().expect("valid");
        let json = serde_json::to_string(&p).expect("serialize");
        let back: Plan = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, p);
    }

    #[test]
    fn exclusion_rule_is_the_stated_thresholds() {
        let r = ExclusionRule::DEFAULT;
        // 2 cores × 50 s = 100 core-s: 2 s steal is the limit, 5 CPU-s of others too.
        assert_eq!(r.disturbed(2, 50.0, 2.0, 5.0), None);
        let s = r.disturbed(2, 50.0, 2.1, 0.0).expect("steal");
        assert!(s.starts_with("steal 2.1 s = 2.1 %"), "{s}");
        let o = r.disturbed(2, 50.0, 0.0, 6.0).expect("others");
        assert!(o.contains("other processes used 6.0 CPU-s = 6.0 %"), "{o}");
        let both = r.disturbed(2, 50.0, 9.0, 9.0).expect("both");
        assert!(both.contains("; "), "{both}");
        assert!(r.disturbed(2, 50.0, f64::NAN, 0.0).is_some());
        assert!(r.disturbed(2, 0.0, 0.0, 0.0).is_some());
        assert!(r.describe().contains("2 %") && r.describe().contains("5 %"));
    }

    #[test]
    fn next_job_follows_the_plan_then_repeats_disturbed_builds() {
        let p = plan(3, false);
        let mut done = Vec::new();
        // The first round in its planned order.
        for id in &p.rounds[0].arms {
            let j = next_job(&p, &done).expect("job");
            assert_eq!((j.round, j.arm.id(), j.repeat), (1, id.clone(), 0));
            // The third build of the round is disturbed.
            done.push(Done {
                round: 1,
                arm: j.arm,
                disturbed: done.len() == 2,
            });
        }
        let third = Arm::parse(&p.rounds[0].arms[2]).expect("arm");
        // Its repeat comes before round 2; disturbed again, once more; then no more.
        for attempt in 1..=2 {
            let j = next_job(&p, &done).expect("repeat");
            assert_eq!((j.round, j.arm, j.repeat), (1, third, attempt));
            done.push(Done {
                round: 1,
                arm: third,
                disturbed: true,
            });
        }
        let j = next_job(&p, &done).expect("round 2");
        assert_eq!((j.round, j.repeat), (2, 0));
        // A resumed run asks the same question with the same answer: the state is the data.
        assert_eq!(next_job(&p, &done), Some(j));
    }

    #[test]
    fn repeats_stop_at_the_budget_and_quick_has_none() {
        let mut p = plan(3, false);
        p.repeat_budget = 1;
        let mut done: Vec<Done> = p.rounds[0]
            .arms
            .iter()
            .map(|a| Done {
                round: 1,
                arm: Arm::parse(a).expect("arm"),
                disturbed: true,
            })
            .collect();
        let j = next_job(&p, &done).expect("one repeat");
        assert_eq!(j.repeat, 1);
        done.push(Done {
            round: 1,
            arm: j.arm,
            disturbed: true,
        });
        assert_eq!(next_job(&p, &done).map(|j| j.round), Some(2));
        let q = plan(3, true);
        assert_eq!((q.max_repeats, q.repeat_budget), (0, 0));
    }

    #[test]
    fn estimate_divides_by_the_share_of_the_node() {
        let p = Plan::new(
            1,
            2,
            100_000,
            false,
            &[
                Arm::Unlimited,
                Arm::Quota {
                    pct: 25,
                    burst: false,
                },
            ],
            &[("cli".to_string(), 2)],
        );
        let t = |_: &str| 10.0;
        // Two rounds of (10 s + 40 s) + 4 × overhead.
        assert!((remaining_secs(&p, &[], &t) - (100.0 + 4.0 * OVERHEAD_S)).abs() < 1e-9);
        let done = [Done {
            round: 1,
            arm: Arm::Unlimited,
            disturbed: false,
        }];
        assert!((remaining_secs(&p, &done, &t) - (90.0 + 3.0 * OVERHEAD_S)).abs() < 1e-9);
    }
}
