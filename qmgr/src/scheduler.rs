//! The scheduler: which message goes to which delivery agent when.
//!
//! One task owns all state; delivery attempts run as tasks of their own and
//! report back over a channel, so no lock is needed and the order of events
//! is the order they are handled in.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

use mailgate_ipc::protocol::qmgr::{ActReply, Action, Target};
use mailgate_ipc::queue_file::{QueueRecord, read_content};
use mailgate_ipc::submit;

use mailgate_config::Route;
use mailgate_ipc::Channel;
use mailgate_ipc::envelope::{Micros, RecipientState, from_micros, now_micros};
use mailgate_ipc::protocol::delivery::{
    AgentRequest, Outcome, RecipientRequest, RecipientResult, Reply, Request,
};
use mailgate_ipc::spool::{
    ACTIVE, DEFERRED, HOLD, INCOMING, act_on_file, is_queue_id, queue_path, service_socket,
};
use mailgate_log::{info, warning};
use tokio::sync::{mpsc, oneshot};

use crate::Settings;
use crate::dsn;
use crate::queue::{self, Loaded};

/// Why qmgr was woken.
#[derive(Clone, Copy, Debug)]
pub enum Wakeup {
    Incoming,
    Flush,
}

/// What qmgr's socket asks of the scheduler.
pub enum Command {
    Wake(Wakeup),
    /// A queue tool's action; the answer goes back through `reply`.
    Act {
        action: Action,
        target: Target,
        reply: oneshot::Sender<ActReply>,
    },
}

/// The most of the original header a notice carries.
const NOTICE_HEADER_LIMIT: usize = 64 * 1024;

/// How often incoming/ is looked at even without a wake-up: a lost wake-up
/// (qmgr restarting) must not leave mail waiting for queue_run_delay.
const INCOMING_SCAN: Duration = Duration::from_secs(5);

struct Message {
    loaded: Loaded,
    active_since: Micros,
    /// Delivery jobs of this message not yet reported back.
    outstanding: usize,
    /// A notice about this message is being queued.
    notifying: bool,
    /// A queue tool's action that waits for the deliveries in flight.
    pending_action: Option<Action>,
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

/// A notice queued (with its queue ID) or not.
struct NoticeDone {
    queue_id: String,
    /// The recipients the notice reported as failed.
    failed: Vec<usize>,
    delay_notice: bool,
    result: Result<String, String>,
}

/// What the tasks of the scheduler report back.
enum Event {
    Job(JobDone),
    Notice(NoticeDone),
}

pub struct Scheduler {
    settings: Settings,
    messages: HashMap<String, Message>,
    destinations: HashMap<Route, Destination>,
    /// Delivery jobs and notices under way.
    in_flight: usize,
    /// Messages whose move out of active/ failed (a full disk, say), with
    /// their updated records and when they are next due: retried at every
    /// queue run and flush until the move succeeds, so they need no
    /// restart and their delivered recipients are not delivered again.
    stranded: HashMap<String, (Loaded, SystemTime)>,
    done_tx: mpsc::UnboundedSender<Event>,
    done_rx: mpsc::UnboundedReceiver<Event>,
    /// A flush is activating messages: defer_transports is lifted for
    /// them (Postfix's QMGR_FLUSH_DFXP).
    flushing: bool,
}

impl Scheduler {
    pub fn new(settings: Settings) -> Scheduler {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Scheduler {
            settings,
            messages: HashMap::new(),
            destinations: HashMap::new(),
            in_flight: 0,
            stranded: HashMap::new(),
            done_tx,
            done_rx,
            flushing: false,
        }
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
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
                Some(command) = commands.recv() => match command {
                    Command::Wake(Wakeup::Incoming) => self.scan_incoming(),
                    Command::Wake(Wakeup::Flush) => {
                        self.retry_stranded();
                        self.flushing = true;
                        self.scan_deferred(true);
                        self.scan_incoming();
                        self.flushing = false;
                    }
                    Command::Act { action, target, reply } => {
                        let _ = reply.send(self.act(action, &target));
                        self.scan_incoming();
                    }
                },
                Some(event) = self.done_rx.recv() => self.handle(event),
                _ = deferred_timer.tick() => {
                    self.retry_stranded();
                    self.scan_deferred(false);
                }
                _ = incoming_timer.tick() => self.scan_incoming(),
            }
        }
        // Stop starting deliveries, but hear the ones under way, so their
        // recipients are not delivered again (nor their notices sent twice).
        while self.in_flight > 0 {
            match self.done_rx.recv().await {
                Some(event) => self.handle(event),
                None => break,
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Job(done) => self.finish_job(done),
            Event::Notice(done) => self.finish_notice(done),
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
        let Some(mut loaded) = queue::load_active(queue_id) else {
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
        let router = &self.settings.router;
        let mut held_back = Vec::new();
        for (index, recipient) in envelope.recipients.iter().enumerate() {
            if recipient.state == RecipientState::Pending {
                // A content filter takes every recipient, whatever its
                // own route; the filter's return path routes them normally.
                let route = match &loaded.record.filter {
                    Some(filter) => router.filter_route(filter, &recipient.address),
                    None => router.route(&recipient.address),
                };
                if !self.flushing && self.settings.defer_transports.contains(&route.transport) {
                    held_back.push(index);
                    continue;
                }
                by_route.entry(route).or_default().push(index);
            }
        }
        // defer_transports: deferred without an attempt, as Postfix's qmgr
        // redirects them to its retry service.
        let arrival = envelope.arrival;
        for index in held_back {
            let recipient = &mut loaded.record.envelope.recipients[index];
            recipient.last_reason = Some("deferred transport".into());
            recipient.last_status = Some("4.3.2".into());
            let now = now_micros();
            let seconds = |micros: u64| micros as f64 / 1e6;
            info!(
                "{queue_id}: to=<{}>, relay=none, delay={:.2}, delays={:.2}/0/0/0, dsn=4.3.2, status=deferred (deferred transport)",
                recipient.address,
                seconds(now.saturating_sub(arrival)),
                seconds(now.saturating_sub(arrival)),
            );
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
                notifying: false,
                pending_action: None,
            },
        );
        if outstanding == 0 {
            self.complete(queue_id);
        }
    }

    /// Starts the jobs that each destination's concurrency limit allows.
    fn dispatch(&mut self) {
        let limit = self.settings.destination_concurrency;
        // Messages a queue tool acted on whose last job was dropped here.
        let mut idle = Vec::new();
        for (route, destination) in &mut self.destinations {
            while destination.in_flight < limit {
                let Some(job) = destination.pending.pop_front() else {
                    break;
                };
                let Some(message) = self.messages.get_mut(&job.queue_id) else {
                    continue;
                };
                if message.pending_action.is_some() {
                    // Deleted, held or requeued: start nothing new for it.
                    message.outstanding -= 1;
                    if message.outstanding == 0 {
                        idle.push(job.queue_id);
                    }
                    continue;
                }
                let request = delivery_request(route, &job, message);
                destination.in_flight += 1;
                self.in_flight += 1;
                let done_tx = self.done_tx.clone();
                let route = route.clone();
                tokio::spawn(async move {
                    let queue_id = request.queue_id.clone();
                    let results = deliver(request).await;
                    let _ = done_tx.send(Event::Job(JobDone {
                        queue_id,
                        route,
                        results,
                    }));
                });
            }
        }
        self.destinations
            .retain(|_, d| d.in_flight > 0 || !d.pending.is_empty());
        for queue_id in idle {
            self.complete(&queue_id);
        }
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
                Outcome::Bounced => {
                    recipient.state = RecipientState::Bounced;
                    recipient.notified = false;
                }
                Outcome::Deferred => {}
            }
            recipient.last_reason = Some(result.reason);
            recipient.last_status = Some(result.dsn);
        }
        message.outstanding -= 1;
        if message.outstanding == 0 {
            self.complete(&done.queue_id);
        }
    }

    /// Every job of the message has reported: apply a queue tool's action
    /// that waited, or expire it and send the notices due, then remove it or
    /// defer it.
    fn complete(&mut self, queue_id: &str) {
        let settings = &self.settings;
        let Some(message) = self.messages.get_mut(queue_id) else {
            return;
        };
        if message.pending_action.is_some() {
            return self.finalize(queue_id);
        }
        let record = &mut message.loaded.record;
        let now = now_micros();
        let age = Duration::from_micros(now.saturating_sub(record.envelope.arrival));
        let null_sender = record.envelope.sender.is_empty();
        let lifetime = lifetime(settings, null_sender);
        let pending = pending_count(record);
        if pending > 0 && age >= lifetime {
            // Expired: what is still pending has failed for good, with the
            // last temporary reason as the explanation.
            for recipient in &mut record.envelope.recipients {
                if recipient.state == RecipientState::Pending {
                    recipient.state = RecipientState::Bounced;
                    recipient.notified = false;
                    recipient.last_status = Some(
                        recipient
                            .last_status
                            .clone()
                            .filter(|s| s.starts_with('4') || s.starts_with('5'))
                            .unwrap_or_else(|| "4.4.7".into()),
                    );
                    if recipient.last_reason.is_none() {
                        recipient.last_reason = Some("delivery time expired".into());
                    }
                }
            }
            let returned = if null_sender {
                "not returned (null sender)"
            } else {
                "returned to sender"
            };
            info!(
                "{queue_id}: from=<{}>, status=expired, {returned}",
                record.envelope.sender
            );
        }
        // NOTIFY=NEVER recipients (BCC actions) are never named in a
        // notice: failed, they count as told.
        for recipient in &mut record.envelope.recipients {
            if recipient.notify_never && recipient.state == RecipientState::Bounced {
                recipient.notified = true;
            }
        }
        let failed: Vec<usize> = record
            .envelope
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == RecipientState::Bounced && !r.notified)
            .map(|(index, _)| index)
            .collect();
        let delay_notice = !settings.delay_warning.is_zero()
            && !record.state.delay_warned
            && record
                .envelope
                .recipients
                .iter()
                .any(|r| r.state == RecipientState::Pending && !r.notify_never)
            && age >= settings.delay_warning;
        if failed.is_empty() && !delay_notice {
            return self.finalize(queue_id);
        }
        if null_sender {
            // Never a notice about a notice: it would go to nobody, or loop.
            for &index in &failed {
                record.envelope.recipients[index].notified = true;
            }
            record.state.delay_warned |= delay_notice;
            if !failed.is_empty() {
                info!("{queue_id}: no non-delivery notification: null sender");
            }
            return self.finalize(queue_id);
        }
        message.notifying = true;
        self.in_flight += 1;
        let task = NoticeTask {
            record: record.clone(),
            content_offset: message.loaded.content_offset,
            failed,
            delay_notice,
            myhostname: settings.myhostname.clone(),
            lifetime,
            timeout: settings.ipc_timeout,
        };
        let done_tx = self.done_tx.clone();
        tokio::spawn(async move {
            let _ = done_tx.send(Event::Notice(task.run().await));
        });
    }

    fn finish_notice(&mut self, done: NoticeDone) {
        self.in_flight -= 1;
        let queue_id = &done.queue_id;
        let Some(message) = self.messages.get_mut(queue_id) else {
            return;
        };
        message.notifying = false;
        match done.result {
            Ok(notice_id) => {
                let record = &mut message.loaded.record;
                for &index in &done.failed {
                    if let Some(recipient) = record.envelope.recipients.get_mut(index) {
                        recipient.notified = true;
                    }
                }
                if done.delay_notice {
                    record.state.delay_warned = true;
                }
                let kind = if done.failed.is_empty() {
                    "delay"
                } else {
                    "non-delivery"
                };
                info!("{queue_id}: sender {kind} notification: {notice_id}");
            }
            // The recipients stay un-notified, so the message stays queued
            // and the notice is tried again at the next attempt.
            Err(e) => warning!("{queue_id}: cannot queue the sender notification: {e}"),
        }
        self.finalize(queue_id);
    }

    /// The message is idle (no delivery, no notice under way): carry out a
    /// waiting action, or remove it when nothing is left to do, or defer it.
    fn finalize(&mut self, queue_id: &str) {
        let Some(mut message) = self.messages.remove(queue_id) else {
            return;
        };
        if let Some(action) = message.pending_action {
            return apply_idle(&message.loaded, action);
        }
        let record = &mut message.loaded.record;
        let unfinished = record.envelope.recipients.iter().any(|r| {
            r.state == RecipientState::Pending
                || (r.state == RecipientState::Bounced && !r.notified)
        });
        if !unfinished {
            return remove(queue_id);
        }
        let now = now_micros();
        record.state.attempts += 1;
        record.state.last_attempt = Some(now);
        let backoff = backoff(
            record.state.attempts,
            self.settings.minimal_backoff,
            self.settings.maximal_backoff,
        );
        let next = now + backoff.as_micros() as u64;
        record.state.next_attempt = Some(next);
        let due = from_micros(next);
        if let Err(e) = queue::save_and_move(&message.loaded, DEFERRED, due) {
            warning!(
                "{queue_id}: cannot move to {DEFERRED}: {e}; trying again at the next queue run"
            );
            self.stranded
                .insert(queue_id.to_string(), (message.loaded, due));
        }
    }

    /// Tries again to move what could not leave active/.
    fn retry_stranded(&mut self) {
        self.stranded.retain(|queue_id, (loaded, due)| {
            match queue::save_and_move(loaded, DEFERRED, *due) {
                Ok(()) => {
                    info!("{queue_id}: moved to {DEFERRED} after an earlier failure");
                    false
                }
                // Removed meanwhile (`mailgate queue delete`): nothing to move.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(_) => true,
            }
        });
    }

    /// A queue tool's action. A message with deliveries or a notice under
    /// way keeps its action until they report back, so what they did is
    /// recorded first; every other message is acted on at once.
    fn act(&mut self, action: Action, target: &Target) -> ActReply {
        let mut reply = ActReply::default();
        let queues = action.queues();
        let ids: Vec<String> = match target {
            Target::Ids(ids) => ids.clone(),
            Target::All => {
                let mut ids: Vec<String> = Vec::new();
                if queues.contains(&ACTIVE) {
                    ids.extend(self.messages.keys().cloned());
                }
                for queue in queues {
                    match queue::list(queue) {
                        Ok(listed) => ids.extend(listed.into_iter().map(|(id, _)| id)),
                        Err(e) => warning!("cannot read {queue}: {e}"),
                    }
                }
                ids.sort();
                ids.dedup();
                ids
            }
        };
        for queue_id in ids {
            // Only a queue ID may name a file (never `../public/cleanup`):
            // the request was checked on arrival, and is checked again here
            // where the name becomes a path.
            if !is_queue_id(&queue_id) {
                warning!("refusing to act on {queue_id:?}: not a queue ID");
                reply.missing.push(queue_id);
                continue;
            }
            if let Some(message) = self.messages.get_mut(&queue_id) {
                if !queues.contains(&ACTIVE) {
                    reply.missing.push(queue_id);
                    continue;
                }
                // Delete wins over an earlier hold or requeue.
                if message.pending_action != Some(Action::Delete) {
                    message.pending_action = Some(action);
                }
                reply.deferred_until_idle.push(queue_id);
                continue;
            }
            // Not in memory: a file in active/ here is one qmgr could not
            // load, so no delivery uses it either.
            let found = queues.iter().find(|q| queue_path(q, &queue_id).exists());
            let Some(from) = found else {
                reply.missing.push(queue_id);
                continue;
            };
            match act_on_file(Path::new("."), &queue_id, from, action) {
                Ok(()) => {
                    log_action(&queue_id, action);
                    reply.done.push(queue_id);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => reply.missing.push(queue_id),
                Err(e) => {
                    warning!("{queue_id}: cannot {}: {e}", action_verb(action));
                    reply.missing.push(queue_id);
                }
            }
        }
        // An active message acted on whose jobs have not started yet is
        // settled by the next dispatch, right after this.
        reply
    }
}

/// The notice being built and queued, away from the scheduler task.
struct NoticeTask {
    record: QueueRecord,
    content_offset: u64,
    failed: Vec<usize>,
    delay_notice: bool,
    myhostname: String,
    lifetime: Duration,
    timeout: Duration,
}

impl NoticeTask {
    async fn run(self) -> NoticeDone {
        let result = self.submit().await;
        NoticeDone {
            queue_id: self.record.queue_id.clone(),
            failed: self.failed,
            delay_notice: self.delay_notice,
            result,
        }
    }

    async fn submit(&self) -> Result<String, String> {
        let record = &self.record;
        let header_length = record.content_length.min(NOTICE_HEADER_LIMIT as u64);
        let queue_id = record.queue_id.clone();
        let offset = self.content_offset;
        // The original's header comes from its queue file, still in active/.
        let headers = tokio::task::spawn_blocking(move || {
            let file = File::open(queue::active_path(&queue_id)).map_err(|e| e.to_string())?;
            read_content(&file, offset, header_length).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let mut recipients: Vec<(&_, dsn::Action)> = self
            .failed
            .iter()
            .filter_map(|&i| record.envelope.recipients.get(i))
            .map(|r| (r, dsn::Action::Failed))
            .collect();
        if self.delay_notice {
            recipients.extend(
                record
                    .envelope
                    .recipients
                    .iter()
                    .filter(|r| r.state == RecipientState::Pending && !r.notify_never)
                    .map(|r| (r, dsn::Action::Delayed)),
            );
        }
        let notice = dsn::Notice {
            record,
            recipients,
            original_headers: dsn::header_section(&headers, NOTICE_HEADER_LIMIT),
            myhostname: &self.myhostname,
            lifetime: self.lifetime,
            now: now_micros(),
        };
        let envelope = notice.envelope(submit::local_client());
        let content = notice.build();
        submit::submit(&service_socket("cleanup"), envelope, &content, self.timeout)
            .await
            .map_err(|e| e.to_string())
    }
}

fn pending_count(record: &QueueRecord) -> usize {
    record
        .envelope
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Pending)
        .count()
}

fn lifetime(settings: &Settings, null_sender: bool) -> Duration {
    if null_sender {
        settings.bounce_queue_lifetime
    } else {
        settings.maximal_queue_lifetime
    }
}

fn action_verb(action: Action) -> &'static str {
    match action {
        Action::Delete => "delete",
        Action::Hold => "put on hold",
        Action::Release => "release",
        Action::Requeue => "requeue",
    }
}

/// The log line of an action, in postsuper's words.
fn log_action(queue_id: &str, action: Action) {
    match action {
        Action::Delete => info!("{queue_id}: removed"),
        Action::Hold => info!("{queue_id}: placed on hold"),
        Action::Release => info!("{queue_id}: released from hold"),
        Action::Requeue => info!("{queue_id}: requeued"),
    }
}

/// Carries out an action that waited for an active message to be idle,
/// keeping what its deliveries recorded.
fn apply_idle(loaded: &Loaded, action: Action) {
    let queue_id = &loaded.record.queue_id;
    let result = match action {
        Action::Delete => queue::remove_active(queue_id),
        Action::Hold => queue::save_and_move(loaded, HOLD, SystemTime::now()),
        Action::Requeue => queue::save_and_move(loaded, INCOMING, SystemTime::now()),
        // Never stored for an active message (it is not on hold).
        Action::Release => Ok(()),
    };
    match result {
        Ok(()) => log_action(queue_id, action),
        Err(e) => warning!("{queue_id}: cannot {}: {e}", action_verb(action)),
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
        client: envelope.client.clone(),
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
            .call::<_, Reply>(&AgentRequest::Deliver(request.clone()), &[file.as_fd()])
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
