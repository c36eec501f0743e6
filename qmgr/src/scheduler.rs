//! The scheduler: which message goes to which delivery agent when.
//!
//! One task owns all state; delivery attempts run as tasks of their own and
//! report back over a channel, so no lock is needed and the order of events
//! is the order they are handled in.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::fd::AsFd;
use std::time::{Duration, SystemTime};

use mailgate_config::Route;
use mailgate_ipc::Channel;
use mailgate_ipc::envelope::{Micros, RecipientState, from_micros, now_micros};
use mailgate_ipc::protocol::delivery::{
    Outcome, RecipientRequest, RecipientResult, Reply, Request,
};
use mailgate_ipc::spool::{ACTIVE, DEFERRED, INCOMING, service_socket};
use mailgate_log::{info, warning};
use tokio::sync::mpsc;

use crate::Settings;
use crate::queue::{self, Loaded};

/// Why qmgr was woken.
#[derive(Clone, Copy, Debug)]
pub enum Wakeup {
    Incoming,
    Flush,
}

/// How often incoming/ is looked at even without a wake-up: a lost wake-up
/// (qmgr restarting) must not leave mail waiting for queue_run_delay.
const INCOMING_SCAN: Duration = Duration::from_secs(5);

struct Message {
    loaded: Loaded,
    active_since: Micros,
    /// Delivery jobs of this message not yet reported back.
    outstanding: usize,
}

struct Job {
    queue_id: String,
    recipients: Vec<usize>,
}

#[derive(Default)]
struct Destination {
    pending: VecDeque<Job>,
    in_flight: usize,
}

struct JobDone {
    queue_id: String,
    route: Route,
    results: Vec<RecipientResult>,
}

pub struct Scheduler {
    settings: Settings,
    messages: HashMap<String, Message>,
    destinations: HashMap<Route, Destination>,
    in_flight: usize,
    done_tx: mpsc::UnboundedSender<JobDone>,
    done_rx: mpsc::UnboundedReceiver<JobDone>,
}

impl Scheduler {
    pub fn new(settings: Settings) -> Scheduler {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Scheduler {
            settings,
            messages: HashMap::new(),
            destinations: HashMap::new(),
            in_flight: 0,
            done_tx,
            done_rx,
        }
    }

    pub async fn run(
        mut self,
        mut wakeups: mpsc::Receiver<Wakeup>,
        shutdown: impl Future<Output = ()>,
    ) {
        // Mail left in active/ by a crash or a stop is delivered again: at
        // worst a duplicate, never a loss.
        self.load_queue(ACTIVE, |_| true);
        self.scan_incoming();
        self.scan_deferred(false);
        let mut deferred_timer = tokio::time::interval(self.settings.queue_run_delay);
        let mut incoming_timer = tokio::time::interval(INCOMING_SCAN);
        tokio::pin!(shutdown);
        loop {
            self.dispatch();
            tokio::select! {
                _ = &mut shutdown => break,
                Some(wakeup) = wakeups.recv() => match wakeup {
                    Wakeup::Incoming => self.scan_incoming(),
                    Wakeup::Flush => {
                        self.scan_deferred(true);
                        self.scan_incoming();
                    }
                },
                Some(done) = self.done_rx.recv() => self.finish_job(done),
                _ = deferred_timer.tick() => self.scan_deferred(false),
                _ = incoming_timer.tick() => self.scan_incoming(),
            }
        }
        // Stop starting deliveries, but hear the ones under way, so their
        // recipients are not delivered again.
        while self.in_flight > 0 {
            match self.done_rx.recv().await {
                Some(done) => self.finish_job(done),
                None => break,
            }
        }
    }

    fn scan_incoming(&mut self) {
        if self.messages.len() >= self.settings.active_limit {
            return;
        }
        let room = self.settings.active_limit - self.messages.len();
        let ids = match queue::list(INCOMING) {
            Ok(ids) => ids,
            Err(e) => return warning!("cannot read {INCOMING}: {e}"),
        };
        for (queue_id, _) in ids.into_iter().take(room) {
            match queue::move_to(&queue_id, INCOMING, ACTIVE) {
                Ok(()) => self.activate(&queue_id),
                Err(e) => warning!("{queue_id}: cannot move to {ACTIVE}: {e}"),
            }
        }
    }

    /// Moves deferred mail whose next attempt is due (all of it when
    /// flushing) back to active/.
    fn scan_deferred(&mut self, flush: bool) {
        let now = SystemTime::now();
        let ids = match queue::list(DEFERRED) {
            Ok(ids) => ids,
            Err(e) => return warning!("cannot read {DEFERRED}: {e}"),
        };
        for (queue_id, next_attempt) in ids {
            if self.messages.len() >= self.settings.active_limit {
                break;
            }
            if flush || next_attempt <= now {
                match queue::move_to(&queue_id, DEFERRED, ACTIVE) {
                    Ok(()) => self.activate(&queue_id),
                    Err(e) => warning!("{queue_id}: cannot move to {ACTIVE}: {e}"),
                }
            }
        }
    }

    fn load_queue(&mut self, queue: &str, due: impl Fn(SystemTime) -> bool) {
        match queue::list(queue) {
            Ok(ids) => {
                for (queue_id, modified) in ids {
                    if due(modified) && !self.messages.contains_key(&queue_id) {
                        self.activate(&queue_id);
                    }
                }
            }
            Err(e) => warning!("cannot read {queue}: {e}"),
        }
    }

    /// Reads a message now in active/ and queues a delivery job per
    /// destination (and per destination_recipient_limit recipients).
    fn activate(&mut self, queue_id: &str) {
        let Some(loaded) = queue::load_active(queue_id) else {
            return;
        };
        let envelope = &loaded.record.envelope;
        info!(
            "{queue_id}: from=<{}>, size={}, nrcpt={} (queue active)",
            envelope.sender,
            loaded.record.content_length,
            envelope.recipients.len()
        );
        let mut by_route: HashMap<Route, Vec<usize>> = HashMap::new();
        for (index, recipient) in envelope.recipients.iter().enumerate() {
            if recipient.state == RecipientState::Pending {
                let route = self.settings.router.route(&recipient.address);
                by_route.entry(route).or_default().push(index);
            }
        }
        let mut outstanding = 0;
        for (route, indexes) in by_route {
            let destination = self.destinations.entry(route).or_default();
            for chunk in indexes.chunks(self.settings.destination_recipients) {
                destination.pending.push_back(Job {
                    queue_id: queue_id.to_string(),
                    recipients: chunk.to_vec(),
                });
                outstanding += 1;
            }
        }
        self.messages.insert(
            queue_id.to_string(),
            Message {
                loaded,
                active_since: now_micros(),
                outstanding,
            },
        );
        if outstanding == 0 {
            self.complete(queue_id);
        }
    }

    /// Starts the jobs that each destination's concurrency limit allows.
    fn dispatch(&mut self) {
        let limit = self.settings.destination_concurrency;
        for (route, destination) in &mut self.destinations {
            while destination.in_flight < limit {
                let Some(job) = destination.pending.pop_front() else {
                    break;
                };
                let Some(message) = self.messages.get(&job.queue_id) else {
                    continue;
                };
                let request = delivery_request(route, &job, message);
                destination.in_flight += 1;
                self.in_flight += 1;
                let done_tx = self.done_tx.clone();
                let route = route.clone();
                tokio::spawn(async move {
                    let queue_id = request.queue_id.clone();
                    let results = deliver(request).await;
                    let _ = done_tx.send(JobDone {
                        queue_id,
                        route,
                        results,
                    });
                });
            }
        }
        self.destinations
            .retain(|_, d| d.in_flight > 0 || !d.pending.is_empty());
    }

    fn finish_job(&mut self, done: JobDone) {
        self.in_flight -= 1;
        if let Some(destination) = self.destinations.get_mut(&done.route) {
            destination.in_flight -= 1;
        }
        let Some(message) = self.messages.get_mut(&done.queue_id) else {
            return;
        };
        let recipients = &mut message.loaded.record.envelope.recipients;
        for result in done.results {
            let Some(recipient) = recipients.get_mut(result.index) else {
                continue;
            };
            match result.outcome {
                Outcome::Sent => recipient.state = RecipientState::Delivered,
                Outcome::Bounced => recipient.state = RecipientState::Bounced,
                Outcome::Deferred => {}
            }
            recipient.last_reason = Some(result.reason);
        }
        message.outstanding -= 1;
        if message.outstanding == 0 {
            self.complete(&done.queue_id);
        }
    }

    /// Every job of the message has reported: remove it, or defer it.
    fn complete(&mut self, queue_id: &str) {
        let Some(mut message) = self.messages.remove(queue_id) else {
            return;
        };
        let record = &mut message.loaded.record;
        let pending = record
            .envelope
            .recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .count();
        if pending == 0 {
            return remove(queue_id);
        }
        let now = now_micros();
        let lifetime = if record.envelope.sender.is_empty() {
            self.settings.bounce_queue_lifetime
        } else {
            self.settings.maximal_queue_lifetime
        };
        if now.saturating_sub(record.envelope.arrival) >= lifetime.as_micros() as u64 {
            info!(
                "{queue_id}: from=<{}>, status=expired, not returned to sender \
                 (delivery status notifications are not implemented yet)",
                record.envelope.sender
            );
            return remove(queue_id);
        }
        record.state.attempts += 1;
        record.state.last_attempt = Some(now);
        let backoff = backoff(
            record.state.attempts,
            self.settings.minimal_backoff,
            self.settings.maximal_backoff,
        );
        let next = now + backoff.as_micros() as u64;
        record.state.next_attempt = Some(next);
        if let Err(e) = queue::save_and_move(&message.loaded, DEFERRED, from_micros(next)) {
            warning!(
                "{queue_id}: cannot move to {DEFERRED}: {e}; it stays in {ACTIVE} until the next start"
            );
        }
    }
}

fn remove(queue_id: &str) {
    match queue::remove_active(queue_id) {
        Ok(()) => info!("{queue_id}: removed"),
        Err(e) => warning!("{queue_id}: cannot remove: {e}"),
    }
}

/// Doubles with each attempt, from minimal_backoff_time up to
/// maximal_backoff_time.
fn backoff(attempts: u32, minimal: Duration, maximal: Duration) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    minimal
        .saturating_mul(factor)
        .min(maximal)
        .max(minimal.min(maximal))
}

fn delivery_request(route: &Route, job: &Job, message: &Message) -> Request {
    let record = &message.loaded.record;
    let envelope = &record.envelope;
    Request {
        queue_id: record.queue_id.clone(),
        transport: route.transport.clone(),
        nexthop: route.nexthop.clone(),
        sender: envelope.sender.clone(),
        recipients: job
            .recipients
            .iter()
            .map(|&index| RecipientRequest {
                index,
                address: envelope.recipients[index].address.clone(),
                original: envelope.recipients[index].original.clone(),
            })
            .collect(),
        body_type: envelope.body_type,
        smtputf8: envelope.smtputf8,
        content_offset: message.loaded.content_offset,
        content_length: record.content_length,
        arrival: envelope.arrival,
        active_since: message.active_since,
    }
}

/// One delivery attempt through the transport's delivery agent. Every
/// requested recipient gets a result: what the agent could not report is
/// deferred.
async fn deliver(request: Request) -> Vec<RecipientResult> {
    let reply = async {
        let file = File::open(queue::active_path(&request.queue_id))
            .map_err(|e| format!("cannot open queue file: {e}"))?;
        let mut agent = Channel::connect(&service_socket(&request.transport))
            .await
            .map_err(|_| "mail transport unavailable".to_string())?;
        agent
            .call::<_, Reply>(&request, &[file.as_fd()])
            .await
            .map_err(|e| format!("delivery agent failed: {e}"))
    }
    .await;
    let (mut results, failure) = match reply {
        Ok(reply) => (reply.results, None),
        Err(reason) => (Vec::new(), Some(reason)),
    };
    results.retain(|r| request.recipients.iter().any(|q| q.index == r.index));
    for recipient in &request.recipients {
        if results.iter().any(|r| r.index == recipient.index) {
            continue;
        }
        let reason = failure
            .clone()
            .unwrap_or_else(|| "delivery agent returned no result".to_string());
        log_unsent(&request, recipient, &reason);
        results.push(RecipientResult {
            index: recipient.index,
            outcome: Outcome::Deferred,
            dsn: "4.3.0".into(),
            reason,
        });
    }
    results
}

/// The log line for a recipient that never reached a delivery agent, in
/// the shape the agents use.
fn log_unsent(request: &Request, recipient: &RecipientRequest, reason: &str) {
    let now = now_micros();
    let seconds = |micros: u64| micros as f64 / 1e6;
    info!(
        "{}: to=<{}>, relay=none, delay={:.2}, delays={:.2}/{:.2}/0/0, dsn=4.3.0, status=deferred ({reason})",
        request.queue_id,
        recipient.address,
        seconds(now.saturating_sub(request.arrival)),
        seconds(request.active_since.saturating_sub(request.arrival)),
        seconds(now.saturating_sub(request.active_since)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let min = Duration::from_secs(300);
        let max = Duration::from_secs(4000);
        assert_eq!(backoff(1, min, max), min);
        assert_eq!(backoff(2, min, max), Duration::from_secs(600));
        assert_eq!(backoff(4, min, max), Duration::from_secs(2400));
        assert_eq!(backoff(5, min, max), max);
        assert_eq!(backoff(500, min, max), max);
    }
}
