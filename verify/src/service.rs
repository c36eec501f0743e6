//! The service: smtpd's queries answered from the cache, and the probes
//! they start. A probe goes to the delivery agent of the address's route
//! (the master.cf service its transport names, `private/smtp` say), which
//! resolves the next hop and asks it exactly as for a delivery (relay's
//! probe.rs); its result goes into the cache for the next query.
//!
//! Queries are answered at once: a probe runs in the background and smtpd
//! asks again (address_verify_poll_count, address_verify_poll_delay). A
//! cache that cannot be read answers "Address verification status
//! unavailable", deferred, and starts no probe: never a pass.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailgate_ipc::protocol::delivery::{AgentRequest, Outcome, Probe, ProbeReply};
use mailgate_ipc::protocol::verify::{Reply, Request, Status};
use mailgate_ipc::spool::service_socket;
use mailgate_ipc::validate::Validate;
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::{info, warning};
use mailgate_store::Store;

use crate::cache::{self, PROBE_TTL, UNAVAILABLE};
use crate::settings::Settings;

/// How long a connection may sit without sending its query.
const IDLE: Duration = Duration::from_secs(30);

pub struct Verifier {
    settings: Settings,
    store: Store,
    /// Addresses whose probe this process is running: a second query
    /// starts none (Postfix would, without the negative cache).
    pending: Mutex<HashSet<String>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    pub fn new(settings: Settings, store: Store) -> Verifier {
        Verifier {
            settings,
            store,
            pending: Mutex::new(HashSet::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One connection: queries in sequence until the peer closes it. A
    /// request that is not a valid query ends the connection (the client
    /// then defers, as for a service failure).
    pub async fn serve(self: Arc<Self>, mut channel: Channel) {
        loop {
            let request = match tokio::time::timeout(IDLE, channel.recv::<Request>()).await {
                Ok(Ok((request, _))) => request,
                Ok(Err(IpcError::Closed)) | Err(_) => return,
                Ok(Err(e)) => {
                    warning!("query from smtpd: {e}");
                    return;
                }
            };
            if let Err(e) = request.validate() {
                channel.log_refusal(e);
                return;
            }
            let Request::Query { address } = request;
            let reply = self.query(&address).await;
            if let Err(e) = channel.send(&reply, &[]).await {
                warning!("cannot answer smtpd: {e}");
                return;
            }
        }
    }

    /// What the cache says about `address`, starting a probe when the
    /// entry is missing or due for a refresh.
    pub async fn query(self: &Arc<Self>, address: &str) -> Reply {
        let found = match self.store.get(address).await {
            Ok(found) => found,
            Err(e) => {
                warning!("address verification cache {e}");
                return Reply {
                    status: Status::Deferred,
                    text: UNAVAILABLE.to_string(),
                };
            }
        };
        let s = &self.settings;
        let now = now();
        let decision = cache::query(found.as_deref(), &s.times, s.negative_cache, now);
        if decision.remove
            && let Err(e) = self.store.remove(address).await
        {
            warning!("address verification cache {e}");
        }
        if decision.probe {
            self.start_probe(address, decision.store, now).await;
        }
        Reply {
            status: decision.status,
            text: decision.text,
        }
    }

    async fn start_probe(self: &Arc<Self>, address: &str, mark: Option<cache::Entry>, now: u64) {
        let over_limit = {
            let Ok(mut pending) = self.pending.lock() else {
                return;
            };
            if pending.contains(address) {
                return;
            }
            let over = pending.len() >= self.settings.pending_limit;
            if !over {
                pending.insert(address.to_string());
            }
            over
        };
        if over_limit {
            // Postfix's qmgr sends such a probe to its retry transport.
            self.record(
                address,
                Status::Deferred,
                "Too many address verification requests",
            )
            .await;
            return;
        }
        if let Some(entry) = mark
            && let Err(e) = self
                .store
                .set(
                    address,
                    &entry.encode(),
                    entry.ttl(&self.settings.times, now),
                )
                .await
        {
            warning!("address verification cache {e}");
        }
        let verifier = Arc::clone(self);
        let address = address.to_string();
        tokio::spawn(async move {
            let (status, text) = verifier.probe(&address).await;
            verifier.record(&address, status, &text).await;
            if let Ok(mut pending) = verifier.pending.lock() {
                pending.remove(&address);
            }
        });
    }

    /// Asks the delivery agent of the address's route, as qmgr would hand
    /// it a message for that address.
    async fn probe(&self, address: &str) -> (Status, String) {
        let route = self.settings.router.route(address);
        let request = AgentRequest::Probe(Probe {
            transport: route.transport.clone(),
            nexthop: route.nexthop,
            sender: self.settings.sender.at(now()),
            recipient: address.to_string(),
        });
        let asked = async {
            if route.transport.is_empty() || route.transport.contains(['/', '\0']) {
                return Err("mail transport unavailable".to_string());
            }
            let mut agent = Channel::connect(&service_socket(&route.transport))
                .await
                .map_err(|_| "mail transport unavailable".to_string())?;
            agent
                .call::<_, ProbeReply>(&request, &[])
                .await
                .map_err(|e| format!("delivery agent failed: {e}"))
        };
        match tokio::time::timeout(Duration::from_secs(PROBE_TTL), asked).await {
            Ok(Ok(reply)) => {
                let status = match reply.outcome {
                    Outcome::Sent => Status::Deliverable,
                    Outcome::Deferred => Status::Deferred,
                    Outcome::Bounced => Status::Undeliverable,
                };
                (status, reply.reason)
            }
            Ok(Err(reason)) => {
                info!("probe of <{address}>: {reason}");
                (Status::Deferred, reason)
            }
            Err(_) => (
                Status::Deferred,
                format!("delivery agent gave no answer within {PROBE_TTL}s"),
            ),
        }
    }

    /// Stores a probe's result as Postfix's update request does.
    async fn record(&self, address: &str, status: Status, text: &str) {
        let s = &self.settings;
        let existing = match self.store.get(address).await {
            Ok(existing) => existing,
            Err(e) => {
                warning!("address verification cache {e}");
                return;
            }
        };
        let now = now();
        let Some(entry) = cache::update(existing.as_deref(), status, text, s.negative_cache, now)
        else {
            return;
        };
        if let Err(e) = self
            .store
            .set(address, &entry.encode(), entry.ttl(&s.times, now))
            .await
        {
            warning!("address verification cache {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_config::MainConfig;

    fn verifier(main_cf: &str) -> Arc<Verifier> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.cf"), main_cf).unwrap();
        let settings = Settings::load(&MainConfig::load(dir.path()).unwrap()).unwrap();
        Arc::new(Verifier::new(settings, Store::in_memory("verify", 1000)))
    }

    async fn wait_until_idle(verifier: &Verifier) {
        for _ in 0..500 {
            if verifier.pending.lock().unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the probe did not finish");
    }

    #[tokio::test]
    async fn a_route_without_its_delivery_agent_is_deferred_after_one_probe() {
        // The route's delivery agent (private/error) does not exist here:
        // the probe fails for now, and that is what the cache then says.
        let v = verifier(
            "address_verify_map =\nrelay_domains = example.com\n\
             transport_maps = inline:{ {example.com=error:5.1.1 no users here} }\n",
        );
        let first = v.query("bob@example.com").await;
        assert_eq!(first.status, Status::InProgress);
        wait_until_idle(&v).await;
        let second = v.query("bob@example.com").await;
        assert_eq!(second.status, Status::Deferred);
        assert_eq!(second.text, "mail transport unavailable");
    }

    #[tokio::test]
    async fn too_many_probes_fail_for_now() {
        let v = verifier(
            "address_verify_map =\naddress_verify_pending_request_limit = 1\n\
             relay_domains = example.com\n",
        );
        v.pending.lock().unwrap().insert("busy@example.com".into());
        let first = v.query("bob@example.com").await;
        assert_eq!(first.status, Status::InProgress);
        let second = v.query("bob@example.com").await;
        assert_eq!(
            (second.status, second.text.as_str()),
            (Status::Deferred, "Too many address verification requests")
        );
    }
}
