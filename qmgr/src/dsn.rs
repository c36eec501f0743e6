//! Delivery status notifications (RFC 3464): the non-delivery report for
//! recipients that failed for good, and the delay notice of
//! delay_warning_time, in the shape Postfix's bounce(8) gives them.
//!
//! qmgr builds the message here and queues it through cleanup like any
//! other (see `mailgate_ipc::submit`), from the null sender, so a notice
//! that cannot be delivered is never answered with another notice.

use std::fmt::Write as _;
use std::time::Duration;

use mailgate_ipc::envelope::{ClientInfo, Envelope, Micros, Recipient};
use mailgate_ipc::queue_file::QueueRecord;

/// What a notice reports about one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Failed for good (5xx, or expired in the queue).
    Failed,
    /// Not delivered yet, still being retried (the delay notice).
    Delayed,
}

/// Everything a notice is made from, gathered by the scheduler.
pub struct Notice<'a> {
    pub record: &'a QueueRecord,
    /// The recipients to report, each with its action.
    pub recipients: Vec<(&'a Recipient, Action)>,
    /// The header section of the original message (CRLF line ends).
    pub original_headers: &'a [u8],
    pub myhostname: &'a str,
    /// How long the message is retried (for the delay notice's text).
    pub lifetime: Duration,
    pub now: Micros,
}

impl Notice<'_> {
    fn any_failed(&self) -> bool {
        self.recipients.iter().any(|(_, a)| *a == Action::Failed)
    }

    /// The envelope of the notice: from the null sender to the original
    /// sender, who must not be null (the caller checks).
    pub fn envelope(&self, client: ClientInfo) -> Envelope {
        Envelope {
            sender: String::new(),
            recipients: vec![Recipient::new(self.record.envelope.sender.clone(), None)],
            client,
            body_type: None,
            smtputf8: self.record.envelope.smtputf8,
            dsn_ret: None,
            dsn_envid: None,
            arrival: self.now,
        }
    }

    /// The notice as it goes to cleanup: CRLF line ends. cleanup adds the
    /// Received, Message-ID and Date headers.
    pub fn build(&self) -> Vec<u8> {
        let host = self.myhostname;
        let queue_id = &self.record.queue_id;
        let envelope = &self.record.envelope;
        let boundary = format!("{queue_id}.{}/{host}", self.now / 1_000_000);
        let failed = self.any_failed();
        let subject = if failed {
            "Undelivered Mail Returned to Sender"
        } else {
            "Delayed Mail (still being retried)"
        };
        let description = if failed {
            "Undelivered Message Headers"
        } else {
            "Delayed Message Headers"
        };
        let mut m = String::new();
        // Writing to a String cannot fail.
        let _ = write!(
            m,
            "From: Mail Delivery System <MAILER-DAEMON@{host}>\n\
             To: <{sender}>\n\
             Subject: {subject}\n\
             Auto-Submitted: auto-replied\n\
             MIME-Version: 1.0\n\
             Content-Type: multipart/report; report-type=delivery-status;\n\
             \tboundary=\"{boundary}\"\n\
             Content-Transfer-Encoding: 8bit\n\
             \n\
             This is a MIME-encapsulated message.\n\
             \n\
             --{boundary}\n\
             Content-Description: Notification\n\
             Content-Type: text/plain; charset=us-ascii\n\
             \n\
             This is the mail system at host {host}.\n\n",
            sender = one_line(&envelope.sender),
        );
        if failed {
            m.push_str(
                "I'm sorry to have to inform you that your message could not\n\
                 be delivered to one or more recipients. It's attached below.\n\n\
                 For further assistance, please send mail to postmaster.\n\n\
                 If you do so, please include this problem report. You can\n\
                 delete your own text from the attached returned message.\n\n",
            );
        } else {
            let _ = write!(
                m,
                "####################################################################\n\
                 # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\
                 ####################################################################\n\n\
                 Your message could not be delivered for {}.\n\
                 It will be retried until it is {} old.\n\n\
                 For further assistance, please send mail to postmaster.\n\n\
                 If you do so, please include this problem report. You can\n\
                 delete your own text from the attached returned message.\n\n",
                age_words(Duration::from_micros(
                    self.now.saturating_sub(envelope.arrival)
                )),
                age_words(self.lifetime),
            );
        }
        m.push_str("                   The mail system\n");
        for (recipient, _) in &self.recipients {
            let reason = recipient.last_reason.as_deref().unwrap_or("unknown error");
            let _ = write!(m, "\n<{}>: {}\n", recipient.address, one_line(reason));
        }
        let _ = write!(
            m,
            "\n--{boundary}\n\
             Content-Description: Delivery report\n\
             Content-Type: message/delivery-status\n\
             \n\
             Reporting-MTA: dns; {host}\n\
             X-Mailgate-Queue-ID: {queue_id}\n\
             X-Mailgate-Sender: rfc822; {sender}\n",
            sender = one_line(&envelope.sender),
        );
        if let Some(envid) = &envelope.dsn_envid {
            let _ = writeln!(m, "Original-Envelope-Id: {}", one_line(envid));
        }
        let _ = writeln!(
            m,
            "Arrival-Date: {}",
            mailgate_log::rfc5322_date((envelope.arrival / 1_000_000) as i64)
        );
        for (recipient, action) in &self.recipients {
            m.push_str(&recipient_fields(
                recipient,
                *action,
                envelope.arrival,
                self.lifetime,
            ));
        }
        let _ = write!(
            m,
            "\n--{boundary}\n\
             Content-Description: {description}\n\
             Content-Type: text/rfc822-headers\n\
             \n"
        );
        let mut out = to_crlf(&m);
        out.extend_from_slice(self.original_headers);
        if !self.original_headers.ends_with(b"\n") && !self.original_headers.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(to_crlf(&format!("\n--{boundary}--\n")).as_slice());
        out
    }
}

/// The per-recipient block of the delivery-status part.
fn recipient_fields(
    recipient: &Recipient,
    action: Action,
    arrival: Micros,
    lifetime: Duration,
) -> String {
    let mut f = String::new();
    let _ = writeln!(f, "\nFinal-Recipient: rfc822; {}", recipient.address);
    if let Some(original) = recipient.original.as_deref().and_then(decode_orcpt) {
        let _ = writeln!(f, "Original-Recipient: rfc822; {original}");
    }
    let (word, default_status) = match action {
        Action::Failed => ("failed", "5.0.0"),
        Action::Delayed => ("delayed", "4.0.0"),
    };
    let _ = writeln!(f, "Action: {word}");
    let status = recipient
        .last_status
        .as_deref()
        .filter(|s| mailgate_config::status::is_valid(s))
        .unwrap_or(default_status);
    let _ = writeln!(f, "Status: {status}");
    let reason = recipient.last_reason.as_deref().unwrap_or("");
    match smtp_reply(reason) {
        Some((mta, reply)) => {
            let _ = writeln!(f, "Remote-MTA: dns; {mta}");
            let _ = writeln!(f, "Diagnostic-Code: smtp; {}", one_line(reply));
        }
        None if !reason.is_empty() => {
            let _ = writeln!(f, "Diagnostic-Code: X-Mailgate; {}", one_line(reason));
        }
        None => {}
    }
    if action == Action::Delayed {
        let until = arrival.saturating_add(lifetime.as_micros() as u64);
        let _ = writeln!(
            f,
            "Will-Retry-Until: {}",
            mailgate_log::rfc5322_date((until / 1_000_000) as i64)
        );
    }
    f
}

/// relay's reason for a reply from the server, `host NAME[IP] said: REPLY
/// (in reply to X command)`, split into the server's name and its reply.
fn smtp_reply(reason: &str) -> Option<(&str, &str)> {
    let rest = reason.strip_prefix("host ")?;
    let (host, reply) = rest.split_once(" said: ")?;
    let name = host.split('[').next().filter(|n| !n.is_empty())?;
    let reply = match reply.rfind(" (in reply to ") {
        Some(at) => &reply[..at],
        None => reply,
    };
    Some((name, reply))
}

/// The address of an ORCPT parameter (`rfc822;xtext`), xtext decoded
/// (RFC 3461 section 4); None for other address types or bad encoding.
fn decode_orcpt(orcpt: &str) -> Option<String> {
    let (kind, xtext) = orcpt.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("rfc822") {
        return None;
    }
    let bytes = xtext.trim().as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(|s| one_line(&s))
}

/// Text from outside (a server's reply) goes into a header field or a
/// report line: no line breaks, no control characters.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn to_crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

/// `4 hours`, `5 days`, as Postfix words a delay (hours below two days).
fn age_words(d: Duration) -> String {
    let hours = d.as_secs() / 3600;
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if hours >= 48 {
        plural(hours / 24, "day")
    } else if hours >= 1 {
        plural(hours, "hour")
    } else {
        plural(d.as_secs() / 60, "minute")
    }
}

/// The header section of a message: up to and including the empty line,
/// at most `limit` bytes (then cut at a line end).
pub fn header_section(content: &[u8], limit: usize) -> &[u8] {
    let end = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 2)
        .unwrap_or(content.len());
    let end = end.min(limit);
    match content[..end].iter().rposition(|&b| b == b'\n') {
        Some(last) => &content[..=last],
        None => &content[..end],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_ipc::envelope::{DeliveryState, RecipientState};

    fn record() -> QueueRecord {
        let mut bounced = Recipient::new(
            "bob@example.com".into(),
            Some("rfc822;Bob+2Bx@example.com".into()),
        );
        bounced.state = RecipientState::Bounced;
        bounced.last_status = Some("5.1.1".into());
        bounced.last_reason = Some(
            "host mx.example.com[192.0.2.1] said: 550 5.1.1 <bob@example.com>: User unknown \
             (in reply to RCPT TO command)"
                .into(),
        );
        let mut deferred = Recipient::new("carol@example.com".into(), None);
        deferred.last_status = Some("4.4.1".into());
        deferred.last_reason = Some("connect to x[192.0.2.2]:25: Connection refused".into());
        QueueRecord {
            queue_id: "0123456789ABCD".into(),
            envelope: Envelope {
                sender: "alice@sender.example".into(),
                recipients: vec![bounced, deferred],
                client: mailgate_ipc::submit::local_client(),
                body_type: None,
                smtputf8: false,
                dsn_ret: None,
                dsn_envid: Some("ENV1".into()),
                arrival: 1_700_000_000_000_000,
            },
            state: DeliveryState::default(),
            message_id: None,
            content_length: 0,
            filter: None,
        }
    }

    fn text(notice: &Notice) -> String {
        String::from_utf8(notice.build()).unwrap()
    }

    #[test]
    fn non_delivery_report_has_rfc3464_structure() {
        let record = record();
        let headers = b"Subject: hello\r\nMessage-ID: <m1@sender.example>\r\n\r\n";
        let notice = Notice {
            record: &record,
            recipients: vec![(&record.envelope.recipients[0], Action::Failed)],
            original_headers: headers,
            myhostname: "gw.example.com",
            lifetime: Duration::from_secs(5 * 86400),
            now: 1_700_000_100_000_000,
        };
        let t = text(&notice);
        assert!(!t.replace("\r\n", "").contains('\n'), "only CRLF line ends");
        let t = t.replace("\r\n", "\n");
        let boundary = "0123456789ABCD.1700000100/gw.example.com";
        assert!(t.starts_with(
            "From: Mail Delivery System <MAILER-DAEMON@gw.example.com>\n\
             To: <alice@sender.example>\n\
             Subject: Undelivered Mail Returned to Sender\n"
        ));
        assert!(t.contains(&format!(
            "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n"
        )));
        // Three parts, then the closing boundary.
        assert_eq!(t.matches(&format!("\n--{boundary}\n")).count(), 3);
        assert!(t.ends_with(&format!("\n--{boundary}--\n")));
        assert!(t.contains(
            "<bob@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1 \
             <bob@example.com>: User unknown (in reply to RCPT TO command)\n"
        ));
        assert!(t.contains(
            "Content-Type: message/delivery-status\n\n\
             Reporting-MTA: dns; gw.example.com\n\
             X-Mailgate-Queue-ID: 0123456789ABCD\n\
             X-Mailgate-Sender: rfc822; alice@sender.example\n\
             Original-Envelope-Id: ENV1\n\
             Arrival-Date: "
        ));
        assert!(t.contains(
            "\nFinal-Recipient: rfc822; bob@example.com\n\
             Original-Recipient: rfc822; Bob+x@example.com\n\
             Action: failed\n\
             Status: 5.1.1\n\
             Remote-MTA: dns; mx.example.com\n\
             Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: User unknown\n"
        ));
        assert!(
            !t.contains("carol@example.com"),
            "only the failed recipient"
        );
        assert!(t.contains(
            "Content-Type: text/rfc822-headers\n\n\
             Subject: hello\nMessage-ID: <m1@sender.example>\n\n"
        ));
        let envelope = notice.envelope(mailgate_ipc::submit::local_client());
        assert_eq!(envelope.sender, "");
        assert_eq!(envelope.recipients[0].address, "alice@sender.example");
    }

    #[test]
    fn delay_notice() {
        let record = record();
        let notice = Notice {
            record: &record,
            recipients: vec![(&record.envelope.recipients[1], Action::Delayed)],
            original_headers: b"Subject: x\r\n",
            myhostname: "gw.example.com",
            lifetime: Duration::from_secs(5 * 86400),
            now: 1_700_000_000_000_000 + 4 * 3600 * 1_000_000,
        };
        let t = text(&notice).replace("\r\n", "\n");
        assert!(t.contains("Subject: Delayed Mail (still being retried)\n"));
        assert!(t.contains(
            "could not be delivered for 4 hours.\nIt will be retried until it is 5 days old."
        ));
        assert!(t.contains(
            "Action: delayed\nStatus: 4.4.1\n\
             Diagnostic-Code: X-Mailgate; connect to x[192.0.2.2]:25: Connection refused\n\
             Will-Retry-Until: "
        ));
        // Headers without the empty line still end the part cleanly.
        assert!(t.contains("Subject: x\n\n--"));
    }

    #[test]
    fn hostile_text_stays_on_one_line() {
        assert_eq!(one_line("a\r\nb\tc"), "a  b c");
        assert_eq!(decode_orcpt("rfc822;a+0D+0Ab@x").as_deref(), Some("a  b@x"));
        assert_eq!(decode_orcpt("rfc822;a+zz@x"), None);
        assert_eq!(decode_orcpt("rfc822;a+"), None);
        assert_eq!(decode_orcpt("x400;abc"), None);
        assert!(mailgate_config::status::is_valid("5.1.1"));
        assert!(!mailgate_config::status::is_valid("5.1"));
        assert!(!mailgate_config::status::is_valid("5.1.1\r\nX: y"));
        assert_eq!(smtp_reply("connect to x: refused"), None);
        assert_eq!(
            smtp_reply("host a.b[1.2.3.4] said: 554 no (in reply to end of DATA command)"),
            Some(("a.b", "554 no"))
        );
    }

    #[test]
    fn header_section_stops_at_the_body() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody\r\n", 1000),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n", 1000),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_section(b"A: 1\r\nB: 2\r\n\r\n", 8), b"A: 1\r\n");
        assert_eq!(header_section(b"", 8), b"");
    }
}
