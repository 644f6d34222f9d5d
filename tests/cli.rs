//! The `burst-scaler` binary as a user runs it.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_burst-scaler"))
}

#[test]
fn crd_subcommand_prints_the_committed_crd() {
    let out = bin().arg("crd").output().expect("run");
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/burstscaler.yaml"
    ))
    .expect("crds/burstscaler.yaml");
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

#[test]
fn controller_without_a_cluster_says_so_and_fails() {
    let out = bin()
        .args([
            "controller",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("BURST_SCALER_METRICS_INTERVAL", "30s")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // It logged its configuration (flags from the environment) before failing.
    let start = err
        .lines()
        .find(|l| l.contains("burst-scaler controller starting"))
        .unwrap_or_else(|| panic!("no start-up line: {err}"));
    let v: serde_json::Value = serde_json::from_str(start).expect("JSON log line");
    assert_eq!(
        v["fields"]["metrics_interval"], "30s",
        "env var sets the flag: {start}"
    );
    assert!(err.contains("cannot reach the Kubernetes API"), "{err}");
}

#[test]
fn bad_flag_values_name_the_flag() {
    let out = bin()
        .args([
            "controller",
            "--node-reserve",
            "1Ki",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--node-reserve") && err.contains("\"1Ki\""),
        "{err}"
    );

    let out = bin()
        .args(["controller", "--metrics-interval", "soon"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--metrics-interval") && err.contains("not a duration"),
        "{err}"
    );
}
