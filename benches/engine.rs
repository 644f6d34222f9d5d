//! One full decision pass over 10 000 governed pods on 500 nodes, 60 samples each (the
//! controller's path, 15 s samples). Goal: under 100 ms per pass on a 2-core machine.
//! And the node agent's pass: one node of 110 pods deciding every second, with an hour of 1 s
//! samples carrying node signals per container (the agent's retention). Goal: well under 1 ms.
//! Run: `cargo bench --bench engine`. Also prints the resident memory the inputs and a pass
//! need (from /proc/self/status).

use std::hint::black_box;

use burst_scaler::engine::fixtures::*;
use burst_scaler::engine::*;
use criterion::{Criterion, criterion_group, criterion_main};

const NODES: usize = 500;
const PODS_PER_NODE: usize = 20;
const SAMPLES: usize = 60;

fn cluster() -> Vec<NodeInput> {
    let now = at(3600);
    (0..NODES)
        .map(|n| {
            let pods = (0..PODS_PER_NODE)
                .map(|i| {
                    // Deterministic variety: a third batch, bursts on some, quiet on others.
                    let usage: Vec<u64> = (0..SAMPLES)
                        .map(|s| {
                            ((n * 7 + i * 13 + s * 29) % 600) as u64
                                + if i % 5 == 0 { 400 } else { 0 }
                        })
                        .collect();
                    let name = format!("ns-{n}/pod-{i}");
                    if i % 3 == 0 {
                        pod(
                            &name,
                            batch_policy(200, (i % 4) as i32),
                            200,
                            1000,
                            series(now, 15, &usage),
                        )
                    } else {
                        pod(&name, latency_policy(), 250, 500, series(now, 15, &usage))
                    }
                })
                .collect();
            let mut node = node(16_000, pods);
            node.name = format!("node-{n}");
            node
        })
        .collect()
}

/// One node of 110 pods (a third batch), 3600 one-second samples each with signals: some
/// latency-sensitive pods starved, some throttled.
fn agent_node() -> NodeInput {
    let now = at(7200);
    let pods = (0..110)
        .map(|i| {
            let samples: Vec<(u64, u16, u16)> = (0..3600)
                .map(|s| {
                    let u = ((i * 13 + s * 29) % 450) as u64;
                    let throttled = if i % 7 == 0 { 300 } else { 0 };
                    let pressure = if i % 5 == 0 { 250 } else { 20 };
                    (u, throttled, pressure)
                })
                .collect();
            let name = format!("ns/pod-{i}");
            let samples = signal_series(now, 1, &samples);
            if i % 3 == 0 {
                pod(&name, batch_policy(100, 0), 50, 300, samples)
            } else {
                pod(&name, latency_policy(), 50, 500, samples)
            }
        })
        .collect();
    let mut n = node(64_000, pods);
    n.actuator = Actuator::NodeAgent;
    n
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let before = rss_kib();
    let nodes = cluster();
    let after_inputs = rss_kib();
    let cfg = config();
    let now = at(3600);
    let out: Vec<NodeDecision> = nodes.iter().map(|n| decide(n, &cfg, now)).collect();
    let after_pass = rss_kib();
    let changes = out
        .iter()
        .flat_map(|d| &d.pods)
        .filter(|p| p.action.changes())
        .count();
    println!(
        "inputs: {} pods on {} nodes, {} samples each: {} MiB resident; one pass's output: {} MiB; {} pods changed",
        NODES * PODS_PER_NODE,
        NODES,
        SAMPLES,
        (after_inputs.saturating_sub(before)) / 1024,
        (after_pass.saturating_sub(after_inputs)) / 1024,
        changes
    );
    drop(out);
    c.bench_function("decide 10k pods / 500 nodes / 60 samples", |b| {
        b.iter(|| {
            for n in &nodes {
                black_box(decide(black_box(n), &cfg, now));
            }
        })
    });
    drop(nodes);

    let agent = agent_node();
    let agent_cfg = EngineConfig {
        sample_interval: std::time::Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let now = at(7200);
    let d = decide(&agent, &agent_cfg, now);
    println!(
        "agent node: 110 pods, 3600 samples each with signals: {} pods changed in one pass",
        d.pods.iter().filter(|p| p.action.changes()).count()
    );
    c.bench_function(
        "decide 1 node / 110 pods / 3600 1-s samples with signals",
        |b| b.iter(|| black_box(decide(black_box(&agent), &agent_cfg, now))),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
