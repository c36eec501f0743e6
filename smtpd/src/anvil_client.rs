//! The connection to the anvil service, which counts each client over
//! every smtpd process (Postfix's anvil_clnt). One task owns the one
//! connection this process keeps open and sends the sessions' requests in
//! order; a session waits at most [`TIMEOUT`] for its answer, and without
//! one counts the client in this process only (see anvil.rs).
//!
//! anvil counts a session open until this process says it ended or closes
//! the connection, so a session counted on a connection that has since
//! been lost (anvil restarted, a timeout) is not counted down on the next
//! one: each connection has a generation, and a disconnect names the one
//! its session was counted on.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mailgate_ipc::protocol::anvil::{Event, Reply, Request};
use mailgate_ipc::spool::PRIVATE;
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::{info, warning};
use tokio::sync::{mpsc, oneshot};

/// The service's name in master.cf (private/anvil), as in Postfix.
pub const SERVICE: &str = "anvil";

/// How long a session waits for anvil's answer, and the task for one
/// reply, before counting in this process.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// After anvil could not be reached, how long the sessions count in this
/// process without trying it again.
const RETRY: Duration = Duration::from_secs(10);

/// While anvil stays unreachable, the warning is repeated at most this often.
const WARN_EVERY: Duration = Duration::from_secs(300);

/// What anvil answered, and on which connection.
pub struct Answer {
    pub reply: Reply,
    pub generation: u64,
}

struct Job {
    request: Request,
    /// None for a disconnect: nobody waits for it.
    reply: Option<oneshot::Sender<Answer>>,
    /// For a disconnect, the connection its session was counted on.
    generation: u64,
}

/// The sending side, shared by the sessions.
pub struct Remote {
    jobs: mpsc::UnboundedSender<Job>,
    service: String,
}

impl Remote {
    /// Starts the task (inside a tokio runtime). `socket` None: anvil's
    /// socket in the spool.
    pub fn start(service: &str, socket: Option<PathBuf>) -> Remote {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(socket, queue));
        Remote {
            jobs,
            service: service.to_string(),
        }
    }

    async fn ask(&self, request: Request) -> Option<Answer> {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            request,
            reply: Some(tx),
            generation: 0,
        };
        self.jobs.send(job).ok()?;
        tokio::time::timeout(TIMEOUT, rx).await.ok()?.ok()
    }

    /// A new session: (count, rate, generation), or None when anvil did not
    /// answer or has no room.
    pub async fn connect(&self, client: IpAddr) -> Option<(u32, u32, u64)> {
        let request = Request::Connect {
            service: self.service.clone(),
            client,
        };
        match self.ask(request).await? {
            Answer {
                reply: Reply::Connected { count, rate },
                generation,
            } => Some((count, rate, generation)),
            _ => None,
        }
    }

    /// One event: its rate, or None.
    pub async fn rate(&self, client: IpAddr, event: Event) -> Option<u32> {
        let request = Request::Rate {
            service: self.service.clone(),
            client,
            event,
        };
        match self.ask(request).await?.reply {
            Reply::Rate(n) => Some(n),
            _ => None,
        }
    }

    /// A session counted on connection `generation` ended.
    pub fn disconnect(&self, client: IpAddr, generation: u64) {
        let _ = self.jobs.send(Job {
            request: Request::Disconnect {
                service: self.service.clone(),
                client,
            },
            reply: None,
            generation,
        });
    }
}

/// The connection's state, owned by the task.
struct Link {
    socket: Option<PathBuf>,
    channel: Option<Channel>,
    generation: u64,
    /// While set, anvil is not tried before this time.
    down_until: Option<Instant>,
    /// When the last "cannot reach" warning was logged, while anvil is down.
    warned: Option<Instant>,
}

impl Link {
    fn path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| std::path::Path::new(PRIVATE).join(SERVICE))
    }

    fn failed(&mut self, why: String) {
        self.channel = None;
        let now = Instant::now();
        self.down_until = Some(now + RETRY);
        if self
            .warned
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            warning!(
                "anvil service {}: {why}; counting the per-client limits in this smtpd process only",
                self.path().display()
            );
            self.warned = Some(now);
        }
    }

    /// The open connection, opening one when anvil may be tried.
    async fn channel(&mut self) -> Option<&mut Channel> {
        if self.channel.is_none() {
            if self.down_until.is_some_and(|t| Instant::now() < t) {
                return None;
            }
            let path = self.path();
            match tokio::time::timeout(TIMEOUT, Channel::connect(&path)).await {
                Ok(Ok(channel)) => {
                    self.channel = Some(channel);
                    self.generation += 1;
                    self.down_until = None;
                    if self.warned.take().is_some() {
                        info!("anvil service {} answers again", path.display());
                    }
                }
                Ok(Err(e)) => {
                    self.failed(format!("cannot connect: {e}"));
                    return None;
                }
                Err(_) => {
                    self.failed(format!("no connection within {}s", TIMEOUT.as_secs()));
                    return None;
                }
            }
        }
        self.channel.as_mut()
    }

    async fn call(&mut self, request: &Request) -> Option<Reply> {
        let fresh = self.channel.is_none();
        let channel = self.channel().await?;
        match tokio::time::timeout(TIMEOUT, channel.call::<_, Reply>(request, &[])).await {
            Ok(Ok(reply)) => Some(reply),
            // anvil closed a connection that worked (restarted on reload,
            // say): one new connection on the same socket before giving up.
            Ok(Err(IpcError::Closed | IpcError::Io(_))) if !fresh => {
                self.channel = None;
                Box::pin(self.call(request)).await
            }
            Ok(Err(e)) => {
                self.failed(e.to_string());
                None
            }
            Err(_) => {
                self.failed(format!("no answer within {}s", TIMEOUT.as_secs()));
                None
            }
        }
    }
}

async fn run(socket: Option<PathBuf>, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut link = Link {
        socket,
        channel: None,
        generation: 0,
        down_until: None,
        warned: None,
    };
    while let Some(job) = queue.recv().await {
        let Some(waiter) = job.reply else {
            // A disconnect counts down only on the connection its session
            // was counted on; a lost connection took its count with it.
            if link.channel.is_some() && job.generation == link.generation {
                link.call(&job.request).await;
            }
            continue;
        };
        if waiter.is_closed() {
            continue;
        }
        let Some(reply) = link.call(&job.request).await else {
            continue;
        };
        let counted = matches!(reply, Reply::Connected { .. });
        let answer = Answer {
            reply,
            generation: link.generation,
        };
        if waiter.send(answer).is_err()
            && counted
            && let Request::Connect { service, client } = job.request
        {
            // The session gave up waiting and counted itself: take back
            // what anvil counted for it.
            link.call(&Request::Disconnect { service, client }).await;
        }
    }
}
