//! `burst-scaler replay` on the shipped sample trace, and its errors.

use std::process::Command;

fn replay(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_burst-scaler"))
        .arg("replay")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const TRACE: &str = "experiments/traces/web-and-compile.json";

/// Asserts that each of `want` is in a line of `out` starting with `t=`, in this order.
fn assert_in_order(out: &str, want: &[&str]) {
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("t=")).collect();
    let mut pos = 0;
    for w in want {
        let found = lines[pos..].iter().position(|l| l.contains(w));
        let Some(i) = found else {
            panic!("missing (in order) {w:?} in:\n{out}");
        };
        pos += i + 1;
    }
}

#[test]
fn sample_trace_shows_burst_throttle_scale_down_and_release() {
    let (ok, out, err) = replay(&[TRACE]);
    assert!(ok, "{err}");
    let want = [
        "t=  120s  ScaleUp   web-7f9c/web: cpu burst 96% of 500m limit for 1 sample → limit 800m",
        "t=  120s  Throttle  compile-x2k4/cc: throttled 1800m → 1000m (floor 400m, priority 0)",
        // Held while web still needs its growth (its peak over the 120 s window), then given
        // back step by step; web steps down after its quiet window.
        "t=  390s  ScaleDown web-7f9c/web: usage at most 150m (19% of 800m limit) for 120s → limit 600m",
        "t=  390s  Release   compile-x2k4/cc: no latency-sensitive pressure on the node → limit 1000m → 1180m (original 1800m)",
        "Release   compile-x2k4/cc: no latency-sensitive pressure on the node → limit 1720m → 1800m (original 1800m)",
        "t=  510s  ScaleDown web-7f9c/web: usage at most 150m (25% of 600m limit) for 120s → limit 500m",
    ];
    assert_in_order(&out, &want);
    assert!(
        out.contains("web: request 250m limit 500m → request 400m limit 800m"),
        "{out}"
    );
}

#[test]
fn json_output_is_machine_readable() {
    let (ok, out, err) = replay(&[TRACE, "--format", "json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let events = v.as_array().expect("array");
    assert!(events.iter().all(|e| e["applied"] == true));
    assert_eq!(events[0]["action"], "ScaleUp");
    assert_eq!(events[0]["t"], 120);
}

#[test]
fn bad_traces_are_refused_with_a_precise_message() {
    let dir = std::env::temp_dir().join(format!("bsc-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let cases = [
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[],"samples":[{"t":0,"pod":"x","container":"c","millicores":1}]}"#,
            "names pod \"x\" container \"c\", which the trace does not define",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2Ki"},"pods":[],"samples":[{"t":0,"pod":"x","container":"c","millicores":1}]}"#,
            "node.allocatable: CPU quantity \"2Ki\" uses the suffix \"Ki\"",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"burstScalers":[{"name":"b","spec":{"selector":{"matchLabels":{"a":"b"}},"role":"Batch","cpu":{"min":"1","max":"2"}}}],"pods":[],"samples":[{"t":0,"pod":"x","container":"c","millicores":1}]}"#,
            "burstScaler \"b\" is invalid: spec: spec.batch.floor is required when spec.role is Batch",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[{"name":"p","containers":[{"name":"c","limits":"1"}]}],"samples":[]}"#,
            "not a valid trace at pods[0].containers[0].limits: unknown field `limits`",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[],"samples":[]}"#,
            "the trace has no samples",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"sampleIntervalSeconds":18446744073709551615,"pods":[{"name":"p","containers":[{"name":"c"}]}],"samples":[{"t":0,"pod":"p","container":"c","millicores":1}]}"#,
            "sampleIntervalSeconds must be between 1 and 3600 (got 18446744073709551615)",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[{"name":"p","containers":[{"name":"c"}]}],"samples":[{"t":0,"pod":"p","container":"c","millicores":1},{"t":1000000000000,"pod":"p","container":"c","millicores":1}]}"#,
            "passes at 15s, more than 1000000; split the trace",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[{"name":"p","containers":[{"name":"c"}]},{"name":"p","containers":[{"name":"c"}]}],"samples":[{"t":0,"pod":"p","container":"c","millicores":1}]}"#,
            "two pods are named \"p\"",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"burstScalers":[{"name":"b","spec":{"selector":{"matchLabels":{"a":"b"}},"role":"LatencySensitive","cpu":{"min":"1","max":"2"}}},{"name":"b","spec":{"selector":{"matchLabels":{"a":"b"}},"role":"Batch","batch":{"floor":"1"},"cpu":{"min":"1","max":"2"}}}],"pods":[],"samples":[]}"#,
            "two burstScalers are named \"b\"",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[{"name":"p","containers":[{"name":"c"}]}],"samples":[{"t":5,"pod":"p","container":"c","millicores":1},{"t":5,"pod":"p","container":"c","millicores":900}]}"#,
            "two samples for pod \"p\" container \"c\" at t=5",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2","reserve":"3"},"pods":[{"name":"p","containers":[{"name":"c"}]}],"samples":[{"t":0,"pod":"p","container":"c","millicores":1}]}"#,
            "node.reserve (3000m) must not be more than node.allocatable (2000m)",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[{"name":"p","containers":[{"name":"c","request":"2","limit":"1"}]}],"samples":[{"t":0,"pod":"p","container":"c","millicores":1}]}"#,
            "pod \"p\" container \"c\" request: the request (2000m) must not be more than the limit (1000m)",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[{"name":"p","containers":[{"name":"c"},{"name":"c"}]}],"samples":[{"t":0,"pod":"p","container":"c","millicores":1}]}"#,
            "pod \"p\" has two containers named \"c\"",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[{"name":"p","containers":[{"name":""}]}],"samples":[{"t":0,"pod":"p","container":"","millicores":1}]}"#,
            "pod \"p\" has a container with an empty name",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[{"name":"p","containers":[{"name":"c"}]}],"samples":[{"t":0,"pod":"p","container":"c","millicores":1,"cpuPressurePercent":140}]}"#,
            "cpuPressurePercent must be between 0 and 100 (got 140)",
        ),
    ];
    for (i, (json, want)) in cases.iter().enumerate() {
        let p = dir.join(format!("{i}.json"));
        std::fs::write(&p, json).expect("write");
        let (ok, _, err) = replay(&[p.to_str().expect("path")]);
        assert!(!ok);
        assert!(err.contains(want), "case {i}: {err}");
    }
    let (ok, _, err) = replay(&["/nonexistent/trace.json"]);
    assert!(
        !ok && err.contains("cannot read /nonexistent/trace.json"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn starvation_trace_raises_the_weight_then_throttles_and_gives_everything_back() {
    let (ok, out, err) = replay(&["experiments/traces/starved-by-shares.json"]);
    assert!(ok, "{err}");
    let want = [
        "t=   12s  ScaleUp   web-5d8f/web: CPU pressure 60% ≥ 10% for 3s, not throttled: starved by CPU shares → weight 100m → 1000m (its limit)",
        "t=   15s  Throttle  compile-9xk2/cc: throttled 2000m → 900m (floor 600m, priority 0): latency-sensitive pods need 1000m (web-5d8f/web: CPU pressure 50% ≥ 40% for 3s with its weight at its limit 1000m)",
        // While web's weight is still raised, what web uses stays web's: the compile gets
        // back only what the allowance leaves (1700m) ...
        "t=   41s  Release   compile-9xk2/cc: no latency-sensitive pressure on the node, 800m of headroom under the batch allowance 1700m → limit 900m → 1100m (original 2000m)",
        "Release   compile-9xk2/cc: no latency-sensitive pressure on the node, 200m of headroom under the batch allowance 1700m → limit 1500m → 1700m (original 2000m)",
        // ... and everything once web's quiet window has given its weight back.
        "t=  316s  ScaleDown web-5d8f/web: no CPU pressure for 300s → weight back to 100m",
        "Release   compile-9xk2/cc: no latency-sensitive pressure on the node → limit 1900m → 2000m (original 2000m)",
    ];
    assert_in_order(&out, &want);
    assert!(
        out.contains("web: request 100m limit 1000m → request 100m limit 1000m weight 1000m"),
        "the weight is shown next to request and limit: {out}"
    );
}

#[test]
fn borrow_trace_borrows_the_idle_node_and_gives_it_back_the_moment_web_bursts() {
    let (ok, out, err) = replay(&["experiments/traces/borrow-and-give-back.json"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("t=")).collect();
    let want = [
        "t=    0s  Borrow    compile-7h2m/cc: no latency-sensitive pressure and 1316m idle on the node (keeping 190m headroom) → borrows: limit 500m → 750m (original 500m, max 2000m)",
        "t=    4s  Borrow    compile-7h2m/cc: no latency-sensitive pressure and 316m idle on the node (keeping 190m headroom) → borrows: limit 1500m → 1626m",
        "t=   60s  ScaleUp   web-5d8f/web: cpu burst 96% of 500m limit for 1 sample → limit 800m",
        "t=   60s  Throttle  compile-7h2m/cc: borrowed CPU taken back at once: limit 1626m → 500m (its original): latency-sensitive pods need 800m (web-5d8f/web bursting)",
        // Web keeps its growth until its 300 s window shows it no longer needs it; then the
        // compile borrows again.
        "t=  376s  ScaleDown web-5d8f/web: usage at most 50m",
        "t=  376s  Borrow    compile-7h2m/cc: no latency-sensitive pressure and 1316m idle",
    ];
    assert_in_order(&out, &want);
    let between: Vec<&&str> = lines
        .iter()
        .filter(|l| {
            l.contains("Borrow") && {
                let t: u64 = l[2..7].trim().parse().unwrap_or(0);
                (60..376).contains(&t)
            }
        })
        .collect();
    assert!(
        between.is_empty(),
        "no borrowing while web needs its growth: {between:?}"
    );
}
