//! Asking the scanner service about a message before it is queued
//! (protocol::scanner). The content goes as the descriptor smtpd sealed.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use mailgate_ipc::Channel;
use mailgate_ipc::auth::SenderAuth;
use mailgate_ipc::envelope::{Envelope, SmtpReply};
use mailgate_ipc::protocol::scanner::{Reply, Request, Verdict};
use mailgate_ipc::spool::service_socket;

/// scanner_failure_action: what a message gets when it could not be
/// scanned. There is deliberately no "accept": nothing is delivered
/// unscanned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailureAction {
    #[default]
    Defer,
    Reject,
}

impl FailureAction {
    pub fn parse(value: &str) -> Result<FailureAction, String> {
        match value.to_ascii_lowercase().as_str() {
            "defer" | "tempfail" => Ok(FailureAction::Defer),
            "reject" => Ok(FailureAction::Reject),
            _ => Err(format!(
                "scanner_failure_action = {value}: expected defer or reject"
            )),
        }
    }

    pub fn reply(self) -> SmtpReply {
        match self {
            FailureAction::Defer => SmtpReply {
                code: 451,
                status: "4.7.1".into(),
                text: "Error: content scanner unavailable, try again later".into(),
            },
            FailureAction::Reject => SmtpReply {
                code: 554,
                status: "5.7.1".into(),
                text: "Error: message could not be scanned".into(),
            },
        }
    }
}

/// Sends the message to `service` and waits at most `timeout` for the
/// verdict. Every failure comes back as a reason for the log.
pub async fn scan(
    service: &str,
    queue_id: &str,
    envelope: &Envelope,
    content: &OwnedFd,
    sender_auth: &SenderAuth,
    received: String,
    timeout: Duration,
) -> Result<Verdict, String> {
    let size = nix::sys::stat::fstat(content)
        .map_err(|e| format!("cannot stat the message: {e}"))?
        .st_size as u64;
    let request = Request {
        size,
        queue_id: queue_id.to_string(),
        sender: envelope.sender.clone(),
        recipients: envelope
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect(),
        client: envelope.client.clone(),
        received,
        sender_auth: sender_auth.clone(),
    };
    let socket = service_socket(service);
    let call = async {
        let mut channel = Channel::connect(&socket)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        channel
            .call::<Request, Reply>(&request, &[content.as_fd()])
            .await
            .map_err(|e| format!("scanner service {service}: {e}"))
    };
    match tokio::time::timeout(timeout, Box::pin(call)).await {
        Err(_) => Err(format!(
            "scanner service {service}: no verdict within scanner_timeout"
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Reply::Verdict(verdict))) => Ok(*verdict),
        Ok(Ok(Reply::Failed { reason })) => Err(format!("scan failed: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_actions() {
        assert_eq!(FailureAction::parse("defer"), Ok(FailureAction::Defer));
        assert_eq!(FailureAction::parse("REJECT"), Ok(FailureAction::Reject));
        assert!(FailureAction::parse("accept").is_err());
        assert_eq!(FailureAction::Defer.reply().code, 451);
        assert_eq!(FailureAction::Reject.reply().code, 554);
    }
}
