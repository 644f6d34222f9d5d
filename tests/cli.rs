//! The `burst-scaler` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
fn controller_logs_its_configuration_and_exits_cleanly_on_sigterm() {
    let mut child = bin()
        .args([
            "controller",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("BURST_SCALER_METRICS_INTERVAL", "30s")
        .env("BURST_SCALER_DRY_RUN", "true")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let start = loop {
        let line = lines
            .next()
            .expect("controller exited before logging")
            .expect("read");
        if line.contains("burst-scaler controller starting") {
            break line;
        }
        assert!(Instant::now() < deadline, "no start-up line");
    };
    let v: serde_json::Value = serde_json::from_str(&start).expect("JSON log line");
    assert_eq!(
        v["fields"]["metrics_interval"], "30s",
        "env var sets the flag: {start}"
    );
    assert_eq!(v["fields"]["dry_run"], true, "{start}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = child.wait().expect("wait");
    assert!(
        code.success(),
        "controller exit status after SIGTERM: {code:?}"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
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
