//! `GET /metrics` on the service's listener, for Prometheus: a minimal
//! HTTP/1.x responder. Everything but a well-formed GET of /metrics gets
//! an error status; requests are bounded in size and time.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailgate_log::warning;
use mailgate_sandbox::die;
use mailgate_stats::prometheus;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::follow::Follower;

const MAX_REQUEST: usize = 8192;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapers served at once; more wait in the backlog.
const CONCURRENT: usize = 16;

pub async fn serve(listener: OwnedFd, follower: Arc<Mutex<Follower>>) {
    let listener = std::net::TcpListener::from(listener);
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| die(format!("listener: {e}")));
    let listener = tokio::net::TcpListener::from_std(listener)
        .unwrap_or_else(|e| die(format!("listener: {e}")));
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warning!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let follower = follower.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(TIMEOUT, answer(stream, &follower)).await;
            drop(permit);
        });
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, follower: &Mutex<Follower>) {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > MAX_REQUEST {
            return reply(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
    }
    let first = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let mut parts = first.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return reply(&mut stream, "400 Bad Request", "").await;
    }
    match (method, target.map(|t| t.split('?').next().unwrap_or(t))) {
        (Some("GET"), Some("/metrics")) => {
            let body = follower
                .lock()
                .map(|f| prometheus(f.ring().snapshot()))
                .ok();
            match body {
                Some(body) => reply(&mut stream, "200 OK", &body).await,
                None => reply(&mut stream, "500 Internal Server Error", "").await,
            }
        }
        (Some("GET"), _) => reply(&mut stream, "404 Not Found", "").await,
        _ => reply(&mut stream, "405 Method Not Allowed", "").await,
    }
}

async fn reply<S: AsyncWrite + Unpin>(stream: &mut S, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
