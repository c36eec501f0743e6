//! Accepting connections on the listener the master handed over, with TLS
//! when a certificate is configured, one request per connection.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use mailgate_log::warning;
use mailgate_sandbox::die;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::app::{App, Peer};
use crate::http::{REQUEST_TIMEOUT, Response, read_request, write_response};

/// A request must be answered within this, however slow the page.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn serve(listener: OwnedFd, app: Arc<App>, tls: Option<TlsAcceptor>, limit: usize) {
    let listener = std::net::TcpListener::from(listener);
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| die(format!("listener: {e}")));
    let listener = tokio::net::TcpListener::from_std(listener)
        .unwrap_or_else(|e| die(format!("listener: {e}")));
    let slots = Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, address) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warning!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let peer = Peer {
                ip: match address.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                    v4 => v4,
                },
            };
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => exchange(stream, &app, &peer).await,
                        Ok(Err(e)) => warning!("web: TLS handshake with {} failed: {e}", peer.ip),
                        Err(_) => {}
                    }
                }
                None => exchange(stream, &app, &peer).await,
            }
            drop(permit);
        });
    }
}

/// Reads one request, answers it, closes.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, app: &App, peer: &Peer) {
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(request)) => request,
        Ok(Err(e)) => {
            if let Some(status) = e.status() {
                let response = Response::error(status, "bad request");
                write_response(&mut stream, &response, false).await;
            }
            return;
        }
        Err(_) => return,
    };
    let response = match tokio::time::timeout(ANSWER_TIMEOUT, app.respond(request, peer)).await {
        Ok(response) => response,
        Err(_) => Response::error(crate::http::Status::Unavailable, "timed out"),
    };
    write_response(&mut stream, &response, false).await;
}
