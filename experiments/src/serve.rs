//! The latency-sensitive service: a small HTTP/1.1 server whose every request costs a fixed
//! amount of real computation. Several replicas share one port with `SO_REUSEPORT` (the kernel
//! spreads new connections over them), so an HPA's extra replicas on a `hostNetwork` node take
//! load as soon as they listen.
//!
//! `GET /work` burns `--work-iters` iterations and answers 200; `GET /healthz` answers at once.
//! A request whose `x-deadline-ms` (Unix milliseconds, set by the load generator) has passed is
//! answered 503 without doing the work: a client that already gave up must not cost CPU, or a
//! collapse would look worse than it is.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use socket2::{Domain, Socket, Type};

/// One request's head, as far as the server cares.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub path: String,
    pub deadline_unix_ms: Option<u64>,
}

/// Parses an HTTP/1.x request head (up to the blank line).
pub fn parse_head(head: &str) -> Result<RequestHead, String> {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {request_line:?}"));
    };
    if method != "GET" || !version.starts_with("HTTP/1.") {
        return Err(format!(
            "only GET over HTTP/1.x is served, got {request_line:?}"
        ));
    }
    let mut deadline_unix_ms = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("x-deadline-ms")
        {
            deadline_unix_ms = Some(value.trim().parse().map_err(|_| {
                format!(
                    "x-deadline-ms must be Unix milliseconds, got {:?}",
                    value.trim()
                )
            })?);
        }
    }
    Ok(RequestHead {
        path: path.to_string(),
        deadline_unix_ms,
    })
}

/// The request's CPU cost: `iters` rounds of a 64-bit mix that the optimizer cannot skip.
pub fn burn(iters: u64) -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(i);
    }
    std::hint::black_box(x)
}

/// Iterations of [`burn`] that take `cost` on this machine right now (measured over ~200 ms;
/// run it on an idle machine).
pub fn calibrate(cost: Duration) -> u64 {
    let probe = 1_000_000u64;
    let mut best = Duration::MAX;
    for _ in 0..10 {
        let t = Instant::now();
        burn(probe);
        best = best.min(t.elapsed());
    }
    let per_iter = best.as_secs_f64() / probe as f64;
    ((cost.as_secs_f64() / per_iter).round() as u64).max(1)
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn handle(mut stream: TcpStream, work_iters: u64) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    let head_end = loop {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if let Some(pos) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if len == buf.len() {
            return respond(&mut stream, 431, "request head too large");
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    match parse_head(&head) {
        Err(e) => respond(&mut stream, 400, &e),
        Ok(req) if req.path == "/healthz" => respond(&mut stream, 200, "ok"),
        Ok(req) if req.path == "/work" => {
            if req.deadline_unix_ms.is_some_and(|d| now_unix_ms() > d) {
                return respond(&mut stream, 503, "deadline passed before the work started");
            }
            let x = burn(work_iters);
            respond(&mut stream, 200, &format!("{x:016x}"))
        }
        Ok(req) => respond(&mut stream, 404, &format!("no such path {}", req.path)),
    }
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes())?;
    stream.flush()
}

/// A listener on `addr` with `SO_REUSEPORT`, so that replicas share the port.
pub fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("bind {addr}"))?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Serves forever with `workers` threads accepting on one listener.
pub fn serve(addr: SocketAddr, work_iters: u64, workers: usize) -> anyhow::Result<()> {
    let listener = Arc::new(listen(addr)?);
    eprintln!(
        "serving on {addr} (SO_REUSEPORT), {workers} workers, {work_iters} iterations per request"
    );
    let threads: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let listener = Arc::clone(&listener);
            std::thread::spawn(move || {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = handle(stream, work_iters);
                        }
                        Err(e) => eprintln!("accept: {e}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_deadline_header() {
        let h = parse_head("GET /work HTTP/1.1\r\nHost: x\r\nX-Deadline-Ms: 1700000000123")
            .expect("valid");
        assert_eq!(
            h,
            RequestHead {
                path: "/work".into(),
                deadline_unix_ms: Some(1_700_000_000_123)
            }
        );
    }

    #[test]
    fn rejects_what_it_does_not_serve() {
        assert!(parse_head("POST /work HTTP/1.1").is_err());
        assert!(parse_head("GET").is_err());
        let e = parse_head("GET /work HTTP/1.1\r\nx-deadline-ms: soon").expect_err("bad deadline");
        assert!(e.contains("x-deadline-ms"), "{e}");
    }

    #[test]
    fn serves_work_and_refuses_expired_deadlines() {
        let listener = listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for s in listener.incoming().take(2).flatten() {
                let _ = handle(s, 1000);
            }
        });
        let ask = |extra: &str| {
            let mut s = TcpStream::connect(addr).expect("connect");
            write!(s, "GET /work HTTP/1.1\r\nHost: t\r\n{extra}\r\n").expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).expect("read");
            out
        };
        assert!(ask("").starts_with("HTTP/1.1 200"));
        assert!(ask("x-deadline-ms: 1\r\n").starts_with("HTTP/1.1 503"));
    }
}
