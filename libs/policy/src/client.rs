//! The client side: queries a policy server over TCP or a Unix socket,
//! reusing connections, as Postfix's smtpd does with check_policy_service.
//!
//! A query either returns the server's action or a [`PolicyError`]; it never
//! invents a result. The caller applies the service's default action
//! (Postfix: `451 4.3.5 Server configuration problem`) on an error, which
//! [`PolicyClient::query_or_default`] does and logs as Postfix does.
//!
//! Each attempt has `timeout` to connect and `timeout` to send the request
//! and read the reply; a failed attempt is retried on a new connection after
//! `retry_delay`, up to `try_limit` attempts. A pooled connection that the
//! server closed while it was idle is noticed before use, or on use, and
//! costs no attempt.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mailgate_log::warning;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, recv};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::action::{Action, read_reply};
use crate::endpoint::Endpoint;
use crate::request::Request;
use crate::settings::PolicySettings;
use crate::wire::{ProtocolError, ReadError};

/// Why a query got no action. Every message names the server.
#[derive(Debug)]
pub enum PolicyError {
    /// The endpoint is not `inet:host:port` or `unix:path`.
    BadEndpoint(mailgate_config::policy::EndpointError),
    /// The host of an inet endpoint has no address.
    Resolve {
        endpoint: String,
        reason: String,
    },
    Connect {
        endpoint: String,
        source: io::Error,
    },
    Timeout {
        endpoint: String,
        during: &'static str,
        after: Duration,
    },
    Io {
        endpoint: String,
        source: io::Error,
    },
    /// The server answered something that is not a reply.
    Protocol {
        endpoint: String,
        error: ProtocolError,
    },
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::BadEndpoint(e) => e.fmt(f),
            PolicyError::Resolve { endpoint, reason } => {
                write!(f, "cannot look up policy server {endpoint}: {reason}")
            }
            PolicyError::Connect { endpoint, source } => {
                write!(f, "connect to {endpoint}: {source}")
            }
            PolicyError::Timeout {
                endpoint,
                during,
                after,
            } => write!(
                f,
                "timeout after {}s while {during} {endpoint}",
                after.as_secs_f32()
            ),
            PolicyError::Io { endpoint, source } => write!(f, "{endpoint}: {source}"),
            PolicyError::Protocol { endpoint, error } => {
                write!(f, "{endpoint}: {error}")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

impl From<mailgate_config::policy::EndpointError> for PolicyError {
    fn from(e: mailgate_config::policy::EndpointError) -> PolicyError {
        PolicyError::BadEndpoint(e)
    }
}

/// A policy client for one server. Create it before the sandbox (it looks
/// up an inet host now); share it between sessions (clones share the
/// connection pool); query it inside a tokio runtime.
#[derive(Clone)]
pub struct PolicyClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    addresses: Vec<SocketAddr>,
    settings: PolicySettings,
    idle: Mutex<Vec<Connection>>,
    sweeper_started: AtomicBool,
}

impl PolicyClient {
    pub fn new(endpoint: Endpoint, settings: PolicySettings) -> Result<PolicyClient, PolicyError> {
        let addresses = crate::endpoint::resolve(&endpoint)?;
        Ok(PolicyClient {
            inner: Arc::new(Inner {
                endpoint,
                addresses,
                settings,
                idle: Mutex::new(Vec::new()),
                sweeper_started: AtomicBool::new(false),
            }),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.inner.settings
    }

    /// Sends `request` and returns the server's action, or why there is none.
    pub async fn query(&self, request: &Request) -> Result<Action, PolicyError> {
        self.start_sweeper();
        let settings = &self.inner.settings;
        let encoded = if request.policy_context.is_empty() && !settings.policy_context.is_empty() {
            let mut request = request.clone();
            request.policy_context = settings.policy_context.clone();
            request.encode()
        } else {
            request.encode()
        };
        let mut attempts = 0;
        let mut stale_retried = false;
        loop {
            let pooled = self.take_idle();
            let reused = pooled.is_some();
            let attempt = async {
                let mut connection = match pooled {
                    Some(connection) => connection,
                    None => self.connect().await?,
                };
                let action = self.exchange(&mut connection, &encoded).await?;
                Ok::<_, PolicyError>((connection, action))
            };
            let error = match attempt.await {
                Ok((mut connection, action)) => {
                    connection.requests += 1;
                    self.put_idle(connection);
                    return Ok(action);
                }
                Err(error) => error,
            };
            // A reused connection the server closed meanwhile: try a fresh
            // one at once, once, without counting an attempt.
            if reused && !stale_retried && is_closed_by_peer(&error) {
                stale_retried = true;
                continue;
            }
            attempts += 1;
            if attempts >= settings.try_limit.max(1) {
                return Err(error);
            }
            tokio::time::sleep(settings.retry_delay).await;
        }
    }

    /// [`Self::query`], and on failure the default action, logging why as
    /// Postfix does (`warning: problem talking to server ...`).
    pub async fn query_or_default(&self, request: &Request) -> Action {
        match self.query(request).await {
            Ok(action) => action,
            Err(e) => {
                warning!("problem talking to server {}: {e}", self.inner.endpoint);
                self.inner.settings.default_action.clone()
            }
        }
    }

    async fn connect(&self) -> Result<Connection, PolicyError> {
        let endpoint = &self.inner.endpoint;
        let timeout = self.inner.settings.timeout;
        let stream = tokio::time::timeout(timeout, async {
            match endpoint {
                Endpoint::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
                Endpoint::Inet { .. } => {
                    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                    for address in &self.inner.addresses {
                        match TcpStream::connect(address).await {
                            Ok(stream) => {
                                let _ = stream.set_nodelay(true);
                                return Ok(Stream::Tcp(stream));
                            }
                            Err(e) => last = e,
                        }
                    }
                    Err(last)
                }
            }
        })
        .await
        .map_err(|_| PolicyError::Timeout {
            endpoint: endpoint.to_string(),
            during: "connecting to",
            after: timeout,
        })?
        .map_err(|source| PolicyError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })?;
        let now = Instant::now();
        Ok(Connection {
            io: BufReader::new(stream),
            created: now,
            last_used: now,
            requests: 0,
        })
    }

    async fn exchange(
        &self,
        connection: &mut Connection,
        encoded: &[u8],
    ) -> Result<Action, PolicyError> {
        let endpoint = &self.inner.endpoint;
        let settings = &self.inner.settings;
        let result = tokio::time::timeout(settings.timeout, async {
            let stream = connection.io.get_mut();
            stream.write_all(encoded).await.map_err(ReadError::Io)?;
            stream.flush().await.map_err(ReadError::Io)?;
            read_reply(&mut connection.io, &settings.limits).await
        })
        .await
        .map_err(|_| PolicyError::Timeout {
            endpoint: endpoint.to_string(),
            during: "talking to",
            after: settings.timeout,
        })?;
        connection.last_used = Instant::now();
        result.map_err(|e| match e {
            ReadError::Io(source) => PolicyError::Io {
                endpoint: endpoint.to_string(),
                source,
            },
            ReadError::Protocol(error) => PolicyError::Protocol {
                endpoint: endpoint.to_string(),
                error,
            },
        })
    }

    /// The most recently used idle connection that is still good.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(connection) = idle.pop() {
            if connection.usable(&self.inner.settings, Instant::now()) {
                return Some(connection);
            }
        }
        None
    }

    fn put_idle(&self, connection: Connection) {
        let settings = &self.inner.settings;
        let limit_reached =
            settings.request_limit > 0 && connection.requests >= settings.request_limit;
        if limit_reached || connection.created.elapsed() >= settings.max_ttl {
            return;
        }
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < settings.pool_size {
            idle.push(connection);
        }
    }

    /// Closes idle connections after max_idle, as Postfix does, even when no
    /// query comes to notice them.
    fn start_sweeper(&self) {
        if self.inner.sweeper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        let period = (self.inner.settings.max_idle / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = inner.upgrade() else { return };
                let now = Instant::now();
                let mut idle = inner.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.retain(|c| now.duration_since(c.last_used) < inner.settings.max_idle);
            }
        });
    }
}

/// An error that a server closing an idle connection gives on its next use.
fn is_closed_by_peer(error: &PolicyError) -> bool {
    match error {
        PolicyError::Protocol { error, .. } => *error == ProtocolError::Truncated,
        PolicyError::Io { source, .. } => matches!(
            source.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

struct Connection {
    io: BufReader<Stream>,
    created: Instant,
    last_used: Instant,
    requests: u32,
}

impl Connection {
    /// Young enough, not idle too long, and neither closed by the server nor
    /// holding bytes nobody asked for.
    fn usable(&self, settings: &PolicySettings, now: Instant) -> bool {
        if now.duration_since(self.last_used) >= settings.max_idle
            || now.duration_since(self.created) >= settings.max_ttl
            || !self.io.buffer().is_empty()
        {
            return false;
        }
        let fd = match self.io.get_ref() {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        };
        let mut byte = [0u8; 1];
        matches!(
            recv(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &mut byte,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT
            ),
            Err(Errno::EAGAIN)
        )
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
