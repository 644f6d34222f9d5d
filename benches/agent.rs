//! One agent tick on a node with 100 governed pods (and 10 ungoverned), samples every second
//! with node signals, 5 minutes of history: cgroup readings → engine input → decisions →
//! writes and report. The cgroup file reads themselves are not in it (they are measured by the
//! agent's `burst_scaler_agent_loop_duration_seconds` on a real node).
//! Run: `cargo bench --bench agent`. Goal: well under 1 ms per tick.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use burst_scaler::agent::cgroup::{Counters, CpuLimits, Driver, Layout, quota_for, shares_for};
use burst_scaler::agent::journal::Journal;
use burst_scaler::agent::plan::{NodeFacts, Planner, Reading, Readings, TickInput};
use burst_scaler::agent::select::{Governor, NodeContainer, NodePod};
use burst_scaler::api::Mode;
use burst_scaler::engine::fixtures::{at, batch_policy, latency_policy};
use burst_scaler::engine::{CpuResources, EngineConfig, QosClass};
use burst_scaler::quantity::MilliCpu;
use criterion::{Criterion, criterion_group, criterion_main};

const GOVERNED: usize = 100;
const UNGOVERNED: usize = 10;
const HISTORY_SECS: u64 = 300;

fn layout() -> (tempdir::Dir, Layout) {
    let dir = tempdir::Dir::new();
    for (f, text) in [
        ("cpu/cpu.shares", "1024\n"),
        ("cpu/cpu.cfs_quota_us", "-1\n"),
        ("cpu/cpu.cfs_period_us", "100000\n"),
        ("cpuacct/cpuacct.usage", "0\n"),
        ("unified/cgroup.controllers", "\n"),
    ] {
        dir.write(f, text);
    }
    let layout = Layout::detect(dir.path(), Driver::Cgroupfs).expect("layout");
    (dir, layout)
}

mod tempdir {
    use std::path::{Path, PathBuf};
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(format!("bsc-agent-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
        pub fn write(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            if let Some(d) = p.parent() {
                std::fs::create_dir_all(d).expect("dir");
            }
            std::fs::write(p, text).expect("write");
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn pods() -> Vec<NodePod> {
    (0..GOVERNED + UNGOVERNED)
        .map(|i| {
            let batch = i % 3 == 0;
            let mut policy = if batch {
                batch_policy(200, 0)
            } else {
                latency_policy()
            };
            policy.mode = Mode::Auto;
            let spec = if batch {
                CpuResources::new(200, 1000)
            } else {
                CpuResources::new(100, 500)
            };
            NodePod {
                key: format!("ns/pod-{i}"),
                namespace: "ns".into(),
                name: format!("pod-{i}"),
                uid: format!("uid-{i}"),
                qos: QosClass::Burstable,
                containers: vec![NodeContainer {
                    name: "main".into(),
                    spec,
                    id: Some(format!("containerd://c{i:04}")),
                }],
                governor: (i < GOVERNED).then(|| Governor {
                    scaler: "bsc".into(),
                    policy: Arc::new(policy),
                }),
                not_governed: None,
            }
        })
        .collect()
}

/// Cumulative readings at second `t` for every pod and container cgroup.
fn readings(layout: &Layout, pods: &[NodePod], t: u64) -> Readings {
    let mut out = Readings::new();
    for (i, p) in pods.iter().enumerate() {
        let spec = p.containers[0].spec;
        let limits = CpuLimits {
            quota_us: spec.limit.map(|l| quota_for(l.0, 100_000)),
            period_us: 100_000,
            shares: shares_for(spec.request.map_or(0, |r| r.0)),
            weight: None,
        };
        let rate = 100 + (i as u64 * 37) % 400; // millicores
        let counters = Counters {
            usage_ns: t * rate * 1_000_000,
            nr_periods: t * 10,
            nr_throttled: t * (i as u64 % 4),
            throttled_ns: 0,
            pressure_some_us: Some(t * 1000 * (i as u64 % 50)),
        };
        let pod = layout.pod(p.qos, &p.uid);
        let c = layout
            .container(&pod, p.containers[0].id.as_deref().unwrap_or_default())
            .expect("container");
        for cg in [pod.relative().to_path_buf(), c.relative().to_path_buf()] {
            out.insert(cg, Ok(Reading { limits, counters }));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let (_dir, layout) = layout();
    let pods = pods();
    let node = NodeFacts {
        name: "n1".into(),
        allocatable: MilliCpu(32_000),
        reserve: MilliCpu(100),
    };
    let journal = Journal::new("n1");
    let pinned = BTreeSet::new();
    let mut planner = Planner::new(EngineConfig {
        sample_interval: Duration::from_secs(1),
        ..EngineConfig::default()
    });
    // Warm up the history.
    let mut t = 0;
    while t < HISTORY_SECS {
        let r = readings(&layout, &pods, t);
        planner.tick(&TickInput {
            node: &node,
            pods: &pods,
            layout: &layout,
            readings: &r,
            pinned: &pinned,
            journal: &journal,
            governing: true,
            restore_all: false,
            now: at(t as i64),
            mono: Duration::from_secs(t),
        });
        t += 1;
    }
    c.bench_function(
        "agent tick, 100 governed pods, 1 s samples, 5 min history",
        |b| {
            b.iter(|| {
                t += 1;
                let r = readings(&layout, &pods, t);
                black_box(planner.tick(&TickInput {
                    node: &node,
                    pods: &pods,
                    layout: &layout,
                    readings: &r,
                    pinned: &pinned,
                    journal: &journal,
                    governing: true,
                    restore_all: false,
                    now: at(t as i64),
                    mono: Duration::from_secs(t),
                }))
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
