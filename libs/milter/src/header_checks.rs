//! milter_header_checks: header_checks(5) tables applied to each header a
//! milter adds, inserts or changes, with the actions Postfix's cleanup
//! carries out there (cleanup_milter.c, header_body_checks.c): REJECT,
//! DISCARD, HOLD, FILTER, REDIRECT and BCC decide about the message;
//! IGNORE and STRIP drop the header, REPLACE replaces it; WARN and INFO
//! log; DUNNO and OK do nothing; after REJECT, DISCARD or REDIRECT nothing
//! more is done. PREPEND is not implemented in Postfix either (it warns,
//! and so do we); PASS and unknown actions get Postfix's "unsupported
//! command" warning. Results are read by cleanup's parser
//! (mailgate_config::content_action), with its warnings.
//! Log lines are Postfix's (`milter-header-reject: header ... from ...`).

use mailgate_config::Table;
use mailgate_config::content_action::{self, ContentAction};
use mailgate_log::{info, warning};

use crate::group::{HeaderChecks, HeaderVerdict};

const MAP_CLASS: &str = "milter_header_checks";

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
    /// REDIRECT, after which no action is carried out.
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
        // cleanup_milter_hbc_extend: once REJECT, DISCARD or REDIRECT has
        // fired, no action is carried out any more.
        if !self.filter_all {
            return HeaderVerdict::Keep;
        }
        let action = match content_action::parse(&result, MAP_CLASS, true) {
            // PASS is cleanup's own, not one of the milter checks'.
            Ok(ContentAction::Pass(_)) => None,
            Ok(action) => Some(action),
            Err(_) if !content_action::is_known(&result) => None,
            Err(w) => {
                warning!("{w}");
                return HeaderVerdict::Keep;
            }
        };
        let Some(action) = action else {
            warning!("unsupported command in {MAP_CLASS} map: {}", result.trim());
            return HeaderVerdict::Keep;
        };
        match action {
            ContentAction::Reject(arg) => {
                let reply = reject_reply(arg);
                let reason = reply.split_once(' ').map_or("", |(_, r)| r);
                self.log("reject", header, reason);
                self.decided.reject = Some(reply);
                self.filter_all = false;
                HeaderVerdict::Stop
            }
            ContentAction::Discard(arg) => {
                self.log("discard", header, arg);
                self.decided.discard = true;
                self.filter_all = false;
                HeaderVerdict::Stop
            }
            ContentAction::Hold(arg) => {
                if self.decided.hold.is_none() {
                    self.log("hold", header, arg);
                    self.decided.hold = Some(header.chars().take(200).collect());
                }
                HeaderVerdict::Keep
            }
            ContentAction::Filter(arg) => {
                self.log("filter", header, arg);
                self.decided.filter = Some(arg.to_string());
                HeaderVerdict::Keep
            }
            ContentAction::Redirect(arg) => {
                self.log("redirect", header, arg);
                self.decided.redirect = Some(arg.to_string());
                self.filter_all = false;
                HeaderVerdict::Keep
            }
            ContentAction::Bcc(arg) => {
                self.log("bcc", header, arg);
                self.decided.bcc.push(arg.to_string());
                HeaderVerdict::Keep
            }
            ContentAction::Warn(arg) => {
                self.log("warning", header, arg);
                HeaderVerdict::Keep
            }
            ContentAction::Info(arg) => {
                self.log("info", header, arg);
                HeaderVerdict::Keep
            }
            ContentAction::Replace(arg) => {
                self.log("replace", header, arg);
                HeaderVerdict::Replace(arg.to_string())
            }
            ContentAction::Prepend(arg) => {
                self.log("prepend", header, arg);
                warning!("the milter_header/body_checks prepend action is not implemented");
                HeaderVerdict::Keep
            }
            ContentAction::Strip(arg) => {
                self.log("strip", header, arg);
                HeaderVerdict::Drop
            }
            ContentAction::Ignore => HeaderVerdict::Drop,
            ContentAction::Dunno | ContentAction::Pass(_) => HeaderVerdict::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_replace_and_nothing_after_redirect() {
        let dir = std::path::Path::new("/");
        let tables = [Table::open(
            "regexp:{{/^X-Strip:/ STRIP gone}, {/^X-Replace:/ REPLACE X-New: 1}, \
             {/^X-Bad:/ REPLACE not a header}, {/^X-Unknown:/ FROB it}, \
             {/^X-Pass:/ PASS}, {/^X-Redirect:/ REDIRECT a@example.com}, \
             {/^X-Bcc:/ BCC b@example.com}}",
            dir,
        )
        .unwrap()];
        let mut run = Run::new(&tables, LogContext::default());
        assert_eq!(run.check("X-Strip: 1"), HeaderVerdict::Drop);
        assert_eq!(
            run.check("X-Replace: 1"),
            HeaderVerdict::Replace("X-New: 1".into())
        );
        // Bad text, unknown actions and cleanup's PASS: warned and kept.
        for header in ["X-Bad: 1", "X-Unknown: 1", "X-Pass: 1"] {
            assert_eq!(run.check(header), HeaderVerdict::Keep, "{header}");
        }
        assert_eq!(run.check("X-Redirect: 1"), HeaderVerdict::Keep);
        // After REDIRECT nothing more, as cleanup_milter_hbc_extend has it.
        assert_eq!(run.check("X-Strip: 2"), HeaderVerdict::Keep);
        assert_eq!(run.check("X-Bcc: 2"), HeaderVerdict::Keep);
        assert_eq!(run.decided.redirect.as_deref(), Some("a@example.com"));
        assert!(run.decided.bcc.is_empty());
    }

    #[test]
    fn reject_replies_as_postfix_gives_them() {
        assert_eq!(reject_reply(""), "550 5.7.1 message content rejected");
        assert_eq!(reject_reply("4.7.1 try later"), "451 4.7.1 try later");
    }
}
