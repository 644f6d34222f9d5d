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

#[test]
fn sample_trace_shows_burst_throttle_scale_down_and_release() {
    let (ok, out, err) = replay(&[TRACE]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("t=")).collect();
    let want = [
        "t=  120s  ScaleUp   web-7f9c/web: cpu burst 96% of 500m limit for 1 sample → limit 800m",
        "t=  120s  Throttle  compile-x2k4/cc: throttled 1800m → 1000m (floor 400m, priority 0)",
        "t=  270s  Release   compile-x2k4/cc: 550m of headroom under the batch allowance 1550m",
        "ScaleDown web-7f9c/web: usage at most 150m",
        "Release   compile-x2k4/cc: no latency-sensitive pressure on the node → limit 1730m → 1800m (original 1800m)",
    ];
    let mut pos = 0;
    for w in want {
        let found = lines[pos..].iter().position(|l| l.contains(w));
        let Some(i) = found else {
            panic!("missing (in order) {w:?} in:\n{out}");
        };
        pos += i + 1;
    }
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
            r#"{"node":{"name":"n","allocatable":"2Ki"},"pods":[],"samples":[]}"#,
            "node.allocatable: CPU quantity \"2Ki\" uses the suffix \"Ki\"",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"burstScalers":[{"name":"b","spec":{"selector":{"matchLabels":{"a":"b"}},"role":"Batch","cpu":{"min":"1","max":"2"}}}],"pods":[],"samples":[]}"#,
            "burstScaler \"b\" is invalid: spec: spec.batch.floor is required when spec.role is Batch",
        ),
        (
            r#"{"node":{"name":"n","allocatable":"2"},"pods":[{"name":"p","containers":[{"name":"c","limits":"1"}]}],"samples":[]}"#,
            "not a valid trace at pods[0].containers[0].limits: unknown field `limits`",
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
