//! One smtpd process's connection: its requests answered in order, and the
//! sessions it counted open counted down when it closes (an smtpd that
//! crashed or was replaced leaves no client counted for ever), as Postfix's
//! anvil drops what a local client registered when it goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use mailgate_ipc::protocol::anvil::{Reply, Request};
use mailgate_ipc::validate::Validate;
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::warning;

use crate::table::{Key, Table};

/// The counts every connection shares.
pub struct Shared {
    table: Mutex<Table>,
    /// When "table full" was last logged: at most once a minute.
    full_logged: Mutex<Option<Instant>>,
}

impl Shared {
    pub fn new(table: Table) -> Arc<Shared> {
        Arc::new(Shared {
            table: Mutex::new(table),
            full_logged: Mutex::new(None),
        })
    }

    pub fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves counts, not invariants.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves one smtpd process until it closes the connection or sends what
/// no smtpd sends; then counts down every session it left open.
pub async fn serve(shared: Arc<Shared>, mut channel: Channel) {
    // The sessions this connection counted open, per client: bounded by
    // the table (a Connect the table has no room for is not counted).
    let mut open: HashMap<Key, u32> = HashMap::new();
    loop {
        let request = match channel.recv::<Request>().await {
            Ok((request, _)) => request,
            Err(IpcError::Closed) => break,
            Err(e) => {
                warning!("request from smtpd: {e}");
                break;
            }
        };
        if let Err(e) = request.validate() {
            channel.log_refusal(e);
            break;
        }
        let reply = answer(&shared, &mut open, request);
        if let Err(e) = channel.send(&reply, &[]).await {
            warning!("cannot answer smtpd: {e}");
            break;
        }
    }
    let mut table = shared.table();
    for (key, n) in open {
        table.disconnect(&key, n);
    }
}

fn answer(shared: &Shared, open: &mut HashMap<Key, u32>, request: Request) -> Reply {
    let now = Instant::now();
    let mut table = shared.table();
    match request {
        Request::Connect { service, client } => {
            let key = (service, client);
            match table.connect(&key, now) {
                Ok((count, rate)) => {
                    let n = open.entry(key).or_default();
                    *n = n.saturating_add(1);
                    Reply::Connected { count, rate }
                }
                Err(_) => full(shared, &key),
            }
        }
        Request::Disconnect { service, client } => {
            let key = (service, client);
            // Only what this connection counted: another smtpd's sessions
            // are not its to end.
            if let Some(n) = open.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&key);
                }
                table.disconnect(&key, 1);
            }
            Reply::Disconnected
        }
        Request::Rate {
            service,
            client,
            event,
        } => {
            let key = (service, client);
            match table.rate(&key, event, now) {
                Ok(rate) => Reply::Rate(rate),
                Err(_) => full(shared, &key),
            }
        }
    }
}

fn full(shared: &Shared, key: &Key) -> Reply {
    let mut logged = shared.full_logged.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    if logged.is_none_or(|at| now.duration_since(at) >= FULL_LOG_EVERY) {
        *logged = Some(now);
        warning!(
            "client table full: not counting ({}:{}) and other new clients; the smtpd processes count them themselves",
            key.0,
            key.1
        );
    }
    Reply::Full
}

/// "table full" is logged at most this often.
const FULL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mailgate_ipc::protocol::anvil::Event;

    use super::*;

    fn connect(client: &str) -> Request {
        Request::Connect {
            service: "smtp".into(),
            client: client.parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn a_closed_connection_counts_its_sessions_down() {
        let shared = Shared::new(Table::new(Duration::from_secs(60), 100));
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let server = tokio::spawn(serve(Arc::clone(&shared), Channel::new(b)));
        let mut first = Channel::new(a);
        let reply: Reply = first.call(&connect("192.0.2.1"), &[]).await.unwrap();
        assert_eq!(reply, Reply::Connected { count: 1, rate: 1 });
        let reply: Reply = first.call(&connect("192.0.2.1"), &[]).await.unwrap();
        assert_eq!(reply, Reply::Connected { count: 2, rate: 2 });

        // A second smtpd process sees the first one's sessions, and cannot
        // end them.
        let (c, d) = tokio::net::UnixStream::pair().unwrap();
        let other = tokio::spawn(serve(Arc::clone(&shared), Channel::new(d)));
        let mut second = Channel::new(c);
        let disconnect = Request::Disconnect {
            service: "smtp".into(),
            client: "192.0.2.1".parse().unwrap(),
        };
        let reply: Reply = second.call(&disconnect, &[]).await.unwrap();
        assert_eq!(reply, Reply::Disconnected);
        let reply: Reply = second.call(&connect("192.0.2.1"), &[]).await.unwrap();
        assert_eq!(reply, Reply::Connected { count: 3, rate: 3 });
        let rate = Request::Rate {
            service: "smtp".into(),
            client: "192.0.2.1".parse().unwrap(),
            event: Event::Message,
        };
        let reply: Reply = second.call(&rate, &[]).await.unwrap();
        assert_eq!(reply, Reply::Rate(1));

        // The first process goes: its two sessions are counted down.
        drop(first);
        server.await.unwrap();
        let reply: Reply = second.call(&connect("192.0.2.1"), &[]).await.unwrap();
        assert_eq!(reply, Reply::Connected { count: 2, rate: 4 });

        // A request no smtpd sends ends the connection, and its sessions.
        let bad = Request::Connect {
            service: "smtp\r\nx".into(),
            client: "192.0.2.1".parse().unwrap(),
        };
        second.send(&bad, &[]).await.unwrap();
        assert!(second.recv::<Reply>().await.is_err());
        other.await.unwrap();
        let key = ("smtp".to_string(), "192.0.2.1".parse().unwrap());
        assert_eq!(shared.table().connect(&key, Instant::now()), Ok((1, 5)));
    }
}
