//! reject_unverified_recipient and reject_unverified_sender, as Postfix's
//! reject_unverified_address: ask the verify service what the next hop
//! said about the address; while its probe is in progress, ask again
//! (address_verify_poll_count times, address_verify_poll_delay apart), then
//! answer 450 "unverified address: Address verification in progress".
//!
//! - deliverable: no decision, the next restriction goes on;
//! - undeliverable (the next hop said 5xx): unverified_*_reject_code with
//!   "undeliverable address: <the next hop's reply>";
//! - deferred or still in progress: unverified_*_defer_code with
//!   "unverified address: <why>", held as defer_if_permit unless
//!   unverified_*_tempfail_action is defer;
//! - the service cannot be asked (down, hung, garbled): 450 "address
//!   verification problem", the same way; never a pass.

use std::path::PathBuf;
use std::time::Duration;

use mailgate_config::MainConfig;
use mailgate_config::restrictions::Subject;
use mailgate_config::verify::reply_code;
use mailgate_ipc::Channel;
use mailgate_ipc::protocol::verify::{Reply, Request, Status};
use mailgate_ipc::spool::service_socket;
use mailgate_log::warning;

use super::{Decision, ErrorClass, Evaluator, State};
use crate::settings::{SettingsError, TempfailAction};

/// The longest text of the service's answer that is used.
const MAX_TEXT: usize = 1024;

/// One side's unverified_{recipient,sender}_* parameters.
#[derive(Clone, Debug)]
pub struct Codes {
    /// For an address the next hop refused for good.
    pub reject: u16,
    /// For one it could not verify (yet).
    pub defer: u16,
    pub tempfail: TempfailAction,
    /// unverified_*_reject_reason: fixed text in place of the next hop's.
    pub reason: String,
}

/// What smtpd needs to ask the verify service, read before the sandbox.
#[derive(Clone, Debug)]
pub struct VerifySettings {
    /// address_verify_service_name.
    pub service: String,
    /// None: the service's socket in the spool (tests name another).
    pub socket: Option<PathBuf>,
    pub poll_count: u32,
    /// address_verify_poll_count under stress.
    pub poll_count_stress: u32,
    pub poll_delay: Duration,
    /// address_verify_service_timeout: for one question and its answer.
    pub timeout: Duration,
    pub recipient: Codes,
    pub sender: Codes,
}

impl VerifySettings {
    pub fn load(
        config: &MainConfig,
        stressed: &MainConfig,
    ) -> Result<VerifySettings, SettingsError> {
        let codes = |side: &'static str| -> Result<Codes, SettingsError> {
            // Postfix takes 2xx too: that code lets the address pass.
            let code = |kind: &str| {
                reply_code(config, &format!("unverified_{side}_{kind}_code")).map_err(|e| {
                    SettingsError::Config {
                        parameter: "unverified_*_code",
                        problems: vec![e],
                    }
                })
            };
            Ok(Codes {
                reject: code("reject")?,
                defer: code("defer")?,
                tempfail: TempfailAction::from(
                    &config.get(&format!("unverified_{side}_tempfail_action")),
                ),
                reason: config.get(&format!("unverified_{side}_reject_reason")),
            })
        };
        let polls = |config: &MainConfig| {
            u32::try_from(config.int("address_verify_poll_count").max(1)).unwrap_or(u32::MAX)
        };
        Ok(VerifySettings {
            service: config.get("address_verify_service_name"),
            socket: None,
            poll_count: polls(config),
            poll_count_stress: polls(stressed),
            poll_delay: config.time("address_verify_poll_delay"),
            timeout: config
                .time("address_verify_service_timeout")
                .max(Duration::from_secs(1)),
            recipient: codes("recipient")?,
            sender: codes("sender")?,
        })
    }

    /// One question to the verify service.
    async fn query(&self, address: &str) -> Result<Reply, String> {
        let socket = self
            .socket
            .clone()
            .unwrap_or_else(|| service_socket(&self.service));
        let asked = async {
            let mut channel = Channel::connect(&socket)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
            let request = Request::Query {
                address: address.to_string(),
            };
            channel
                .call::<_, Reply>(&request, &[])
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.timeout, asked).await {
            Ok(Ok(reply)) if reply.text.len() <= MAX_TEXT => Ok(reply),
            Ok(Ok(reply)) => Err(format!("an answer of {} bytes", reply.text.len())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {}s", self.timeout.as_secs())),
        }
    }
}

/// Text from the service as a reply may carry it: no control characters.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// At most `max` characters (Postfix's %.250s).
fn shorten(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

impl Evaluator<'_> {
    /// reject_unverified_address for `address`, the sender or the
    /// recipient (`subject`).
    pub(super) async fn unverified(
        &self,
        st: &mut State,
        address: &str,
        subject: Subject,
    ) -> Decision {
        let v = &self.settings.verify;
        let (codes, dsn) = match subject {
            Subject::Sender => (&v.sender, "4.1.7"),
            _ => (&v.recipient, "4.1.1"),
        };
        let class = subject.reply_class();
        let configurable = codes.tempfail == TempfailAction::DeferIfPermit;
        let polls = if st.stress {
            v.poll_count_stress
        } else {
            v.poll_count
        };
        let mut count = 0;
        let answer = loop {
            let answer = v.query(address).await;
            if !matches!(&answer, Ok(reply) if reply.status == Status::InProgress) {
                break answer;
            }
            count += 1;
            if count >= polls {
                break answer;
            }
            tokio::time::sleep(v.poll_delay).await;
        };
        let reply = match answer {
            Ok(reply) => reply,
            Err(e) => {
                warning!("{} service failure: {e}", v.service);
                return self.defer_if_permit(
                    st,
                    configurable,
                    450,
                    dsn,
                    format!("<{address}>: {class} rejected: address verification problem"),
                );
            }
        };
        let code = match reply.status {
            Status::Deliverable => return Decision::Dunno,
            Status::Deferred | Status::InProgress => codes.defer,
            Status::Undeliverable => codes.reject,
        };
        let why = if code >= 400 && !codes.reason.is_empty() {
            codes.reason.clone()
        } else {
            printable(&reply.text)
        };
        match code / 100 {
            2 => Decision::Dunno,
            4 => self.defer_if_permit(
                st,
                configurable,
                code,
                dsn,
                format!(
                    "<{address}>: {class} rejected: unverified address: {}",
                    shorten(&why, 250)
                ),
            ),
            _ => self.reject(
                st,
                ErrorClass::Policy,
                code,
                dsn,
                format!("<{address}>: {class} rejected: undeliverable address: {why}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Peer, PeerStatus};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A verify service on a Unix socket that answers every query with
    /// `replies` in turn (the last one again when they run out), counting
    /// the queries; None keeps the connection open and never answers.
    fn service(
        dir: &std::path::Path,
        replies: Vec<Option<(Status, &'static str)>>,
    ) -> (PathBuf, Arc<AtomicUsize>) {
        let path = dir.join("verify");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut channel = Channel::new(stream);
                let Ok((Request::Query { .. }, _)) = channel.recv::<Request>().await else {
                    continue;
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let answer = replies[n.min(replies.len() - 1)];
                match answer {
                    Some((status, text)) => {
                        let reply = Reply {
                            status,
                            text: text.to_string(),
                        };
                        let _ = channel.send(&reply, &[]).await;
                    }
                    // Hung: the question taken, no answer ever.
                    None => held.push(channel),
                }
            }
        });
        (path, count)
    }

    fn settings(socket: PathBuf, extra: &str) -> crate::settings::Settings {
        let mut s = crate::settings::tests::settings(&format!(
            "address_verify_poll_delay = 0\naddress_verify_service_timeout = 1s\n{extra}"
        ));
        s.verify.socket = Some(socket);
        s
    }

    fn state() -> State {
        let mut st = State::new(Peer::unknown(
            "192.0.2.1".parse().unwrap(),
            40000,
            PeerStatus::Perm,
        ));
        st.stage = "RCPT";
        st
    }

    async fn check(s: &crate::settings::Settings, subject: Subject) -> (Decision, State) {
        let mut st = state();
        let decision = Evaluator::new(s)
            .unverified(&mut st, "bob@example.com", subject)
            .await;
        (decision, st)
    }

    fn rejected(decision: &Decision) -> String {
        match decision {
            Decision::Reject(reply) => reply.to_string(),
            other => panic!("not rejected: {other:?}"),
        }
    }

    #[tokio::test]
    async fn next_hop_refusals_get_the_reject_code_with_their_reply() {
        let dir = tempfile::tempdir().unwrap();
        let said = "host mx[192.0.2.9] said: 550 5.1.1 <bob@example.com>: User unknown (in reply to RCPT TO command)";
        let (socket, _) = service(dir.path(), vec![Some((Status::Undeliverable, said))]);
        let s = settings(socket, "unverified_recipient_reject_code = 550\n");
        let (decision, _) = check(&s, Subject::Recipient).await;
        assert_eq!(
            rejected(&decision),
            format!(
                "550 5.1.1 <bob@example.com>: Recipient address rejected: undeliverable address: {said}"
            )
        );
        // With the default code, 450, it is a 4xx as Postfix words it
        // ("unverified address"), held as defer_if_permit; the sender's
        // status code is 4.1.7, and a fixed reason replaces the next hop's
        // words.
        let s = settings(
            s.verify.socket.clone().unwrap(),
            "unverified_sender_reject_reason = Address lookup failed\n\
             unverified_sender_tempfail_action = defer\n",
        );
        let (decision, _) = check(&s, Subject::Sender).await;
        assert_eq!(
            rejected(&decision),
            "450 4.1.7 <bob@example.com>: Sender address rejected: unverified address: Address lookup failed"
        );
    }

    #[tokio::test]
    async fn deliverable_passes_and_a_probe_in_progress_is_polled_then_deferred() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, count) = service(
            dir.path(),
            vec![
                Some((Status::InProgress, "Address verification in progress")),
                Some((Status::Deliverable, "250 2.1.5 Ok")),
            ],
        );
        let s = settings(socket, "");
        let (decision, _) = check(&s, Subject::Recipient).await;
        assert_eq!(decision, Decision::Dunno);
        assert_eq!(count.load(Ordering::SeqCst), 2);

        let dir = tempfile::tempdir().unwrap();
        let (socket, count) = service(
            dir.path(),
            vec![Some((
                Status::InProgress,
                "Address verification in progress",
            ))],
        );
        // defer_if_permit (the default tempfail action): held, not yet a
        // rejection; with defer, at once.
        let s = settings(socket.clone(), "");
        let (decision, st) = check(&s, Subject::Recipient).await;
        assert_eq!(decision, Decision::Dunno);
        assert_eq!(count.load(Ordering::SeqCst), 3, "address_verify_poll_count");
        assert!(st.defer_if_permit.active);
        assert_eq!(
            (st.defer_if_permit.code, st.defer_if_permit.text.as_str()),
            (
                450,
                "<bob@example.com>: Recipient address rejected: unverified address: Address verification in progress"
            )
        );
        let s = settings(socket, "unverified_recipient_tempfail_action = defer\n");
        let (decision, _) = check(&s, Subject::Recipient).await;
        assert_eq!(
            rejected(&decision),
            "450 4.1.1 <bob@example.com>: Recipient address rejected: unverified address: Address verification in progress"
        );
    }

    #[tokio::test]
    async fn a_service_that_cannot_answer_defers_never_passes() {
        let dir = tempfile::tempdir().unwrap();
        let expected =
            "450 4.1.1 <bob@example.com>: Recipient address rejected: address verification problem";
        // No service at all.
        let s = settings(
            dir.path().join("nothing-here"),
            "unverified_recipient_tempfail_action = defer\n",
        );
        assert_eq!(rejected(&check(&s, Subject::Recipient).await.0), expected);
        // A service that takes the question and never answers.
        let (socket, _) = service(dir.path(), vec![None]);
        let s = settings(socket, "unverified_recipient_tempfail_action = defer\n");
        assert_eq!(rejected(&check(&s, Subject::Recipient).await.0), expected);
    }

    #[test]
    fn codes_are_checked_and_2xx_is_allowed() {
        let s = crate::settings::tests::settings("unverified_recipient_defer_code = 250\n");
        assert_eq!(s.verify.recipient.defer, 250);
        let e = crate::settings::tests::settings_in(
            std::path::Path::new("/"),
            "unverified_sender_reject_code = 399\n",
        )
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .contains("unverified_sender_reject_code = 399"),
            "{e}"
        );
        assert_eq!(shorten("héllo", 2), "hé");
        assert_eq!(printable("a\r\nb"), "a??b");
    }
}
