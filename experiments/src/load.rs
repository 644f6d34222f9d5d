//! Open-loop load generator: requests leave at a planned rate whether or not earlier ones were
//! answered, and each latency is measured from the request's *intended* send time, so a stalled
//! server (or a starved generator) cannot hide behind coordinated omission. Percentiles come
//! from HDR histograms, one per window of intended send time.
//!
//! Bounded: the plan has a fixed number of requests, every request has a timeout, at most
//! `max_in_flight` are open at once (the rest count as errors, not sent), and only loopback
//! addresses are accepted.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A piece of the rate schedule: from `from` (offset from the start) on, `rate` requests/s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub from: Duration,
    pub rate: f64,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub duration: Duration,
    pub timeout: Duration,
    pub window: Duration,
    pub max_in_flight: usize,
}

impl Plan {
    /// Intended send offsets: constant spacing 1/rate inside each step (computed per step, so
    /// rounding never adds or drops a request at a boundary).
    pub fn schedule(&self) -> Vec<Duration> {
        let end = self.duration.as_secs_f64();
        let mut out = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            let from = s.from.as_secs_f64();
            let until = self
                .steps
                .get(i + 1)
                .map_or(end, |n| n.from.as_secs_f64())
                .min(end);
            if s.rate <= 0.0 || until <= from {
                continue;
            }
            let n = ((until - from) * s.rate - 1e-9).ceil().max(0.0) as u64;
            out.extend((0..n).map(|k| Duration::from_secs_f64(from + k as f64 / s.rate)));
        }
        out
    }
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// No answer within the timeout (measured from the intended send time).
    Timeout,
    /// The server answered something other than 200 (503: deadline passed).
    Status(u16),
    /// Connection refused/reset, or a malformed answer.
    Io,
    /// Not sent: too many requests were already open.
    Shed,
}

/// Per-window results (window = intended send time / `window`).
#[derive(Debug)]
pub struct Window {
    pub sent: u64,
    pub latency_us: Histogram<u64>,
    pub errors: u64,
    pub timeouts: u64,
}

impl Window {
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        (!self.latency_us.is_empty()).then(|| self.latency_us.value_at_quantile(q) as f64 / 1000.0)
    }
}

pub struct Report {
    pub windows: Vec<Window>,
    pub total: Histogram<u64>,
    pub sent: u64,
    pub errors: u64,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 120 s at 3 significant figures.
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds are valid")
}

/// Runs `plan` against `addr` (loopback only). `started` is called with the instant the first
/// request is due, so callers can align other samplers with the windows.
pub async fn run(addr: SocketAddr, plan: &Plan) -> anyhow::Result<Report> {
    if !addr.ip().is_loopback() {
        bail!("the load generator only sends to 127.0.0.0/8 or ::1, not {addr}");
    }
    let schedule = plan.schedule();
    let n_windows = (plan.duration.as_secs_f64() / plan.window.as_secs_f64()).ceil() as usize;
    let mut windows: Vec<Window> = (0..n_windows)
        .map(|_| Window {
            sent: 0,
            latency_us: histogram(),
            errors: 0,
            timeouts: 0,
        })
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<(Duration, Duration, Outcome)>();
    let start = Instant::now() + Duration::from_millis(50);
    let start_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        + 50;
    let in_flight = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let timeout = plan.timeout;
    let max_in_flight = plan.max_in_flight;
    let sender = {
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            for offset in schedule {
                tokio::time::sleep_until(start + offset).await;
                if in_flight.load(std::sync::atomic::Ordering::Relaxed) >= max_in_flight {
                    let _ = tx.send((offset, Duration::ZERO, Outcome::Shed));
                    continue;
                }
                in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let tx = tx.clone();
                let in_flight = in_flight.clone();
                let deadline_ms =
                    start_unix_ms + offset.as_millis() as u64 + timeout.as_millis() as u64;
                tokio::spawn(async move {
                    let due = start + offset;
                    let outcome =
                        match tokio::time::timeout_at(due + timeout, request(addr, deadline_ms))
                            .await
                        {
                            Ok(o) => o,
                            Err(_) => Outcome::Timeout,
                        };
                    in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = tx.send((
                        offset,
                        Instant::now().saturating_duration_since(due),
                        outcome,
                    ));
                });
            }
        })
    };
    let mut total = histogram();
    let (mut sent, mut errors) = (0u64, 0u64);
    while let Some((offset, latency, outcome)) = rx.recv().await {
        let i = ((offset.as_secs_f64() / plan.window.as_secs_f64()) as usize)
            .min(n_windows.saturating_sub(1));
        let Some(w) = windows.get_mut(i) else {
            continue;
        };
        w.sent += 1;
        sent += 1;
        match outcome {
            Outcome::Ok => {
                let us = (latency.as_micros() as u64).clamp(1, 120_000_000);
                let _ = w.latency_us.record(us);
                let _ = total.record(us);
            }
            Outcome::Timeout => {
                // A request that got no answer counts as the timeout in the percentiles (it
                // took at least that long), not only in the error count.
                let us = (plan.timeout.as_micros() as u64).clamp(1, 120_000_000);
                let _ = w.latency_us.record(us);
                let _ = total.record(us);
                w.timeouts += 1;
                w.errors += 1;
                errors += 1;
            }
            _ => {
                w.errors += 1;
                errors += 1;
            }
        }
    }
    sender.await?;
    Ok(Report {
        windows,
        total,
        sent,
        errors,
    })
}

async fn request(addr: SocketAddr, deadline_ms: u64) -> Outcome {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Outcome::Io;
    };
    let req = format!(
        "GET /work HTTP/1.1\r\nhost: load\r\nx-deadline-ms: {deadline_ms}\r\nconnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return Outcome::Io;
    }
    let mut buf = Vec::with_capacity(256);
    if s.read_to_end(&mut buf).await.is_err() {
        return Outcome::Io;
    }
    match parse_status(&buf) {
        Some(200) => Outcome::Ok,
        Some(code) => Outcome::Status(code),
        None => Outcome::Io,
    }
}

fn parse_status(buf: &[u8]) -> Option<u16> {
    let line = buf.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(steps: &[(u64, f64)], secs: u64) -> Plan {
        Plan {
            steps: steps
                .iter()
                .map(|&(f, r)| Step {
                    from: Duration::from_secs(f),
                    rate: r,
                })
                .collect(),
            duration: Duration::from_secs(secs),
            timeout: Duration::from_secs(1),
            window: Duration::from_secs(5),
            max_in_flight: 100,
        }
    }

    #[test]
    fn schedule_follows_the_rate_steps() {
        let s = plan(&[(0, 10.0), (2, 100.0), (3, 10.0)], 5).schedule();
        // 2 s at 10/s + 1 s at 100/s + 2 s at 10/s.
        assert_eq!(s.len(), 20 + 100 + 20);
        assert!(
            s.windows(2).all(|w| w[0] < w[1]),
            "intended send times increase"
        );
        assert!(s.iter().all(|t| *t < Duration::from_secs(5)));
    }

    #[test]
    fn a_zero_rate_step_sends_nothing() {
        let s = plan(&[(0, 0.0), (1, 10.0)], 2).schedule();
        assert_eq!(s.len(), 10);
        assert!(s[0] >= Duration::from_secs(1));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 Busy\r\n"), Some(503));
        assert_eq!(parse_status(b"garbage"), None);
    }

    #[tokio::test]
    async fn refuses_non_loopback_targets() {
        let e = run("10.0.0.1:80".parse().expect("addr"), &plan(&[(0, 1.0)], 1)).await;
        assert!(e.is_err());
    }

    #[tokio::test]
    async fn measures_a_real_server_and_counts_refused_connections() {
        let listener = crate::serve::listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        // Nothing listens: every request is an error, none is lost.
        let r = run(addr, &plan(&[(0, 20.0)], 1)).await.expect("run");
        assert_eq!((r.sent, r.errors), (20, 20));
        // A real server: every request answered, latencies recorded.
        std::thread::spawn(move || crate::serve::serve(addr, 1000, 2));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = run(addr, &plan(&[(0, 50.0)], 1)).await.expect("run");
        assert_eq!((r.sent, r.errors), (50, 0));
        assert_eq!(r.total.len(), 50);
    }

    #[tokio::test]
    async fn a_request_without_an_answer_counts_as_the_timeout_in_the_percentiles() {
        // A server that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                open.push(s);
            }
        });
        let mut p = plan(&[(0, 5.0)], 1);
        p.timeout = Duration::from_millis(300);
        let r = run(addr, &p).await.expect("run");
        held.abort();
        assert_eq!((r.sent, r.errors), (5, 5));
        assert_eq!(
            r.total.len(),
            5,
            "every timed-out request is in the histogram"
        );
        let p99_ms = r.total.value_at_quantile(0.99) as f64 / 1000.0;
        assert!((299.0..=301.0).contains(&p99_ms), "p99 {p99_ms} ms");
    }
}
