//! milter_header_checks: header_checks(5) tables applied to each header a
//! milter adds, inserts or changes, with the actions Postfix's cleanup
//! carries out there (cleanup_milter.c): REJECT, DISCARD, HOLD, FILTER,
//! REDIRECT and BCC decide about the message; IGNORE drops the header,
//! REPLACE replaces it; WARN and INFO log; DUNNO and OK do nothing.
//! PREPEND is not implemented in Postfix either (it warns, and so do we).
//! Log lines are Postfix's (`milter-header-reject: header ... from ...`).

use mailgate_config::Table;
use mailgate_log::{info, warning};

use crate::group::{HeaderChecks, HeaderVerdict};

/// What the checks decided about the message.
#[derive(Debug, Default)]
pub struct Decisions {
    /// The reply, `550 5.7.1 text` or `451 4.x.x text`.
    pub reject: Option<String>,
    pub discard: bool,
    pub hold: Option<String>,
    pub filter: Option<String>,
    pub redirect: Option<String>,
    pub bcc: Vec<String>,
}

/// Who the message is from, for the log lines.
#[derive(Clone, Debug, Default)]
pub struct LogContext {
    pub queue_id: Option<String>,
    /// `name[addr]`.
    pub client: String,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub protocol: String,
    pub helo: Option<String>,
}

pub struct Run<'a> {
    tables: &'a [Table],
    context: LogContext,
    pub decided: Decisions,
    /// Postfix's CLEANUP_FLAG_FILTER_ALL: cleared by REJECT, DISCARD and
    /// REDIRECT, after which the actions that decide are not looked at.
    filter_all: bool,
}

impl<'a> Run<'a> {
    pub fn new(tables: &'a [Table], context: LogContext) -> Run<'a> {
        Run {
            tables,
            context,
            decided: Decisions::default(),
            filter_all: true,
        }
    }

    /// Postfix's cleanup_milter_hbc_log: `ID: milter-header-ACTION: header
    /// TEXT from host[addr]; from=<s> to=<r> proto=P helo=<h>: TEXT`.
    fn log(&self, action: &str, header: &str, optional: &str) {
        let c = &self.context;
        let shown: String = header.chars().take(200).collect();
        let mut line = format!(
            "{}: milter-header-{action}: header {shown} from {};",
            c.queue_id.as_deref().unwrap_or("NOQUEUE"),
            c.client
        );
        if let Some(sender) = &c.sender {
            line.push_str(&format!(" from=<{sender}>"));
        }
        if let Some(recipient) = &c.recipient {
            line.push_str(&format!(" to=<{recipient}>"));
        }
        line.push_str(&format!(" proto={}", c.protocol));
        if let Some(helo) = &c.helo {
            line.push_str(&format!(" helo=<{helo}>"));
        }
        if !optional.is_empty() {
            line.push_str(&format!(": {optional}"));
        }
        info!("{line}");
    }
}

/// REJECT's reply, `550 5.7.1 text` or `451 4.x.x text`, as Postfix's
/// cleanup gives it (mailgate_config::content_reject).
fn reject_reply(text: &str) -> String {
    let r = mailgate_config::content_reject::reject_reply(text);
    if let Some(w) = &r.warning {
        warning!("{w}");
    }
    format!("{} {} {}", r.code, r.status, r.text)
}

impl HeaderChecks for Run<'_> {
    fn check(&mut self, header: &str) -> HeaderVerdict {
        let Some(result) = self.tables.iter().find_map(|t| t.lookup(header)) else {
            return HeaderVerdict::Keep;
        };
        let result = result.trim();
        let (action, arg) = match result.split_once(char::is_whitespace) {
            Some((a, rest)) => (a, rest.trim()),
            None => (result, ""),
        };
        let action = action.to_ascii_uppercase();
        let deciding = matches!(
            action.as_str(),
            "REJECT" | "DISCARD" | "HOLD" | "FILTER" | "REDIRECT" | "BCC"
        );
        if deciding && !self.filter_all {
            return HeaderVerdict::Keep;
        }
        match action.as_str() {
            "REJECT" => {
                let reply = reject_reply(arg);
                let reason = reply.split_once(' ').map_or("", |(_, r)| r);
                self.log("reject", header, reason);
                self.decided.reject = Some(reply);
                self.filter_all = false;
                HeaderVerdict::Stop
            }
            "DISCARD" => {
                self.log("discard", header, arg);
                self.decided.discard = true;
                self.filter_all = false;
                HeaderVerdict::Stop
            }
            "HOLD" => {
                if self.decided.hold.is_none() {
                    self.log("hold", header, arg);
                    self.decided.hold = Some(header.chars().take(200).collect());
                }
                HeaderVerdict::Keep
            }
            "FILTER" if arg.contains(':') => {
                self.log("filter", header, arg);
                self.decided.filter = Some(arg.to_string());
                HeaderVerdict::Keep
            }
            "FILTER" => {
                warning!(
                    "bad FILTER command {arg} in milter_header_checks -- need transport:destination"
                );
                HeaderVerdict::Keep
            }
            "REDIRECT" | "BCC" if !arg.contains('@') => {
                warning!(
                    "bad {action} target \"{arg}\" in milter_header_checks map -- need user@domain"
                );
                HeaderVerdict::Keep
            }
            "REDIRECT" => {
                self.log("redirect", header, arg);
                self.decided.redirect = Some(arg.to_string());
                self.filter_all = false;
                HeaderVerdict::Keep
            }
            "BCC" => {
                self.log("bcc", header, arg);
                self.decided.bcc.push(arg.to_string());
                HeaderVerdict::Keep
            }
            "WARN" => {
                self.log("warning", header, arg);
                HeaderVerdict::Keep
            }
            "INFO" => {
                self.log("info", header, arg);
                HeaderVerdict::Keep
            }
            "IGNORE" => HeaderVerdict::Drop,
            "REPLACE" if !arg.is_empty() => HeaderVerdict::Replace(arg.to_string()),
            "PREPEND" => {
                warning!("the milter_header/body_checks prepend action is not implemented");
                HeaderVerdict::Keep
            }
            "DUNNO" | "OK" => HeaderVerdict::Keep,
            _ => {
                warning!(
                    "unsupported milter_header_checks action \"{result}\" for header {header}; ignored"
                );
                HeaderVerdict::Keep
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_replies_as_postfix_gives_them() {
        assert_eq!(reject_reply(""), "550 5.7.1 message content rejected");
        assert_eq!(reject_reply("4.7.1 try later"), "451 4.7.1 try later");
    }
}
