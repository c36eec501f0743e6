//! The greylisting decision, postgrey's algorithm (1.37) step by step:
//! client whitelist, recipient whitelist, client auto-whitelist, then the
//! triplet. Log lines are postgrey's, so its users' scripts and habits
//! carry over:
//!
//! ```text
//! ID: action=greylist, reason=new, client_name=..., client_address=..., sender=..., recipient=...
//! action=greylist, reason=early-retry (12s missing), ...
//! action=pass, reason=triplet found, delay=315, ...
//! action=pass, reason=client whitelist | recipient whitelist | client AWL, ...
//! whitelisted: name[address]
//! ```
//!
//! Whatever goes wrong with the store, the answer defers (`DEFER_IF_PERMIT
//! ... temporary failure`): greylisting that cannot run never lets mail
//! through.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use mailgate_log::{info, warning};
use mailgate_policy::{Action, Request};
use mailgate_store::{Store, StoreError};

use crate::settings::Settings;
use crate::triplet;
use crate::whitelist::Listed;

/// How many recent message instances are remembered, so that a message
/// with several recipients gets one X-Greylist header (postgrey: 10).
const INSTANCES: usize = 100;

/// The auto-whitelist counts at most one passed retry per client an hour.
const AWL_INTERVAL: u64 = 3600;

/// Namespaces of the two kinds of entries in the store.
const TRIPLET: &str = "t:";
const CLIENT: &str = "c:";

pub struct Greylister {
    settings: Settings,
    store: Store,
    instances: Mutex<VecDeque<String>>,
}

/// The answer when the store fails: never a pass.
pub const TEMPORARY_FAILURE: &str = "DEFER_IF_PERMIT 4.3.0 Greylisting temporary failure";

impl Greylister {
    pub fn new(settings: Settings, store: Store) -> Greylister {
        Greylister {
            settings,
            store,
            instances: Mutex::new(VecDeque::with_capacity(INSTANCES)),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The action for one request at time `now` (seconds since the epoch).
    pub async fn decide(&self, request: &Request, now: u64) -> Action {
        let action = match self.check(request, now).await {
            Ok(action) => action,
            Err(e) => {
                warning!(
                    "{}greylist database {e}: answering \"{TEMPORARY_FAILURE}\" for client_address={}, sender={}, recipient={}",
                    queue_prefix(request),
                    request.client_address,
                    request.sender,
                    request.recipient
                );
                TEMPORARY_FAILURE.to_string()
            }
        };
        Action::new(&action).unwrap_or_else(|_| {
            // The text comes from validated settings; this is a bug.
            warning!("BUG: malformed greylist action \"{action}\"");
            Action::new(TEMPORARY_FAILURE).unwrap_or_else(|_| unreachable!())
        })
    }

    async fn check(&self, request: &Request, now: u64) -> Result<String, StoreError> {
        let Ok(ip) = request.client_address.parse::<IpAddr>() else {
            warning!(
                "request without a usable client_address (\"{}\"): DUNNO",
                request.client_address
            );
            return Ok("DUNNO".to_string());
        };
        if request.recipient.is_empty() {
            warning!(
                "request at {} without a recipient: DUNNO (use check_policy_service in smtpd_recipient_restrictions)",
                request.protocol_state
            );
            return Ok("DUNNO".to_string());
        }
        let whitelists = &self.settings.whitelists;
        if whitelists.client(&request.client_name, ip) == Listed::Yes {
            log_action(request, "pass", "client whitelist", None);
            return Ok("DUNNO".to_string());
        }
        if whitelists.recipient(&request.recipient) == Listed::Yes {
            log_action(request, "pass", "recipient whitelist", None);
            return Ok("DUNNO".to_string());
        }
        let awl = self.settings.auto_whitelist_clients;
        let client_key = format!("{CLIENT}{ip}");
        let mut client = None;
        if awl > 0 {
            client = self.store.get(&client_key).await?.and_then(|v| pair(&v));
            if let Some((count, last)) = client
                && count >= awl
            {
                if now >= last + AWL_INTERVAL || last > now {
                    self.remember_client(&client_key, count + 1, now).await?;
                }
                log_action(request, "pass", "client AWL", None);
                return Ok("DUNNO".to_string());
            }
        }

        let key = format!(
            "{TRIPLET}{}",
            triplet::key(
                &triplet::client_network(ip),
                &request.sender,
                &request.recipient
            )
        );
        let delay = self.settings.delay;
        let mut first = now;
        let mut last_was_successful = false;
        let stored = self.store.get(&key).await?.and_then(|v| pair(&v));
        // postgrey's "new": the triplet was not in the database (a retry
        // within the same second is an early retry all the same).
        let mut new = stored.is_none();
        if let Some((stored_first, stored_last)) = stored {
            first = stored_first;
            if stored_last.saturating_sub(stored_first) >= delay {
                last_was_successful = true;
            } else if now.saturating_sub(first) > self.settings.retry_window {
                // The first retry came after the retry window: start again.
                first = now;
                new = true;
            }
            if first > now {
                info!("correcting date for first seen in the future!");
                first = now;
            }
        }
        // An entry that has not passed is worth keeping only while a retry
        // may still count; one that passed, for max_age.
        let ttl = if now - first >= delay {
            self.settings.max_age
        } else {
            (first + self.settings.retry_window + 1 - now).min(self.settings.max_age)
        };
        self.store
            .set(
                &key,
                format!("{first},{now}").as_bytes(),
                Duration::from_secs(ttl.max(1)),
            )
            .await?;

        let waited = now - first;
        if awl > 0 && waited >= delay && !last_was_successful {
            let recorded_recently = client.is_some_and(|(_, last)| now < last + AWL_INTERVAL);
            if !recorded_recently {
                let count = client.map_or(0, |(count, _)| count) + 1;
                self.remember_client(&client_key, count, now).await?;
                if count == awl {
                    info!("whitelisted: {}", client_label(request, ip));
                }
            }
        }

        if waited < delay {
            let missing = delay - waited;
            let reason = if new {
                "new".to_string()
            } else {
                format!("early-retry ({missing}s missing)")
            };
            log_action(request, "greylist", &reason, None);
            return Ok(format!("DEFER_IF_PERMIT {}", self.text(request, missing)));
        }
        if !last_was_successful && self.is_new_instance(&request.instance) {
            log_action(
                request,
                "pass",
                "triplet found",
                Some(&format!("delay={waited}")),
            );
            return Ok(format!(
                "PREPEND X-Greylist: delayed {waited} seconds by mailgate-greylist at {}; {}",
                self.settings.hostname,
                mailgate_log::rfc5322_date(i64::try_from(now).unwrap_or(i64::MAX))
            ));
        }
        log_action(request, "pass", "triplet found", None);
        Ok("DUNNO".to_string())
    }

    async fn remember_client(&self, key: &str, count: u64, now: u64) -> Result<(), StoreError> {
        self.store
            .set(
                key,
                format!("{count},{now}").as_bytes(),
                Duration::from_secs(self.settings.max_age.max(1)),
            )
            .await
    }

    /// greylist_text with %s (seconds left) and %r (recipient domain), and
    /// postgrey's 4.2.0 status for a text without one (postgrey does so for
    /// every Postfix since 2.3: an Exchange server treats 4.7.1 as final).
    fn text(&self, request: &Request, missing: u64) -> String {
        let domain = request
            .recipient
            .rsplit_once('@')
            .map_or(request.recipient.as_str(), |(_, d)| d);
        let text = self
            .settings
            .text
            .replacen("%s", &missing.to_string(), 1)
            .replacen("%r", &clean(domain), 1);
        if text.starts_with(|c: char| c.is_ascii_digit()) {
            text
        } else {
            format!("4.2.0 {text}")
        }
    }

    /// True the first time an instance (one message) is seen.
    fn is_new_instance(&self, instance: &str) -> bool {
        if instance.is_empty() {
            return true;
        }
        let mut seen = self.instances.lock().unwrap_or_else(|p| p.into_inner());
        if seen.iter().any(|i| i == instance) {
            return false;
        }
        if seen.len() == INSTANCES {
            seen.pop_back();
        }
        seen.push_front(instance.to_string());
        true
    }
}

/// A recipient domain as it may appear in a reply: printable, no spaces.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || c.is_whitespace() {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// "first,last" or "count,last".
fn pair(value: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (a, b) = text.split_once(',')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn queue_prefix(request: &Request) -> String {
    if request.queue_id.is_empty() {
        String::new()
    } else {
        format!("{}: ", request.queue_id)
    }
}

fn client_label(request: &Request, ip: IpAddr) -> String {
    if request.client_name.is_empty() {
        ip.to_string()
    } else {
        format!("{}[{ip}]", request.client_name)
    }
}

/// postgrey's log line: `[ID: ]action=A, reason=R[, extra], client_name=...,
/// client_address=..., sender=..., recipient=...` (empty attributes left out).
fn log_action(request: &Request, action: &str, reason: &str, extra: Option<&str>) {
    let mut parts = vec![format!("action={action}"), format!("reason={reason}")];
    parts.extend(extra.map(str::to_string));
    for (name, value) in [
        ("client_name", &request.client_name),
        ("client_address", &request.client_address),
        ("sender", &request.sender),
        ("recipient", &request.recipient),
    ] {
        if !value.is_empty() {
            parts.push(format!("{name}={value}"));
        }
    }
    info!("{}{}", queue_prefix(request), parts.join(", "));
}

#[cfg(test)]
#[path = "greylist_tests.rs"]
mod tests;
