//! Where a message goes after the queue: the FILTER, REDIRECT and BCC
//! decisions about it, applied to the envelope in one place, with what
//! Postfix makes of them between its queue file and qmgr.
//!
//! smtpd decides first (content_filter, the access table actions,
//! milter_header_checks, all in `Actions`), cleanup's header and body
//! checks later, so theirs win, as in Postfix, where cleanup's own FILTER
//! and REDIRECT replace what smtpd sent: the last FILTER counts, the last
//! REDIRECT counts, BCC recipients add up. REDIRECT overrides everything
//! else (qmgr_message_resolve: "Redirect overrides all else"): the message
//! goes to that one address, not through the content filter and not to the
//! BCC recipients. A REDIRECT address is not rewritten (header_checks(5):
//! not subject to canonical or virtual alias mapping); BCC recipients are,
//! as Postfix's cleanup rewrites them, and as in Postfix they are added with
//! NOTIFY=NEVER: the sender hears nothing about them.

use mailgate_ipc::envelope::{Envelope, Recipient, SmtpReply};
use mailgate_ipc::protocol::cleanup::Actions;

use crate::checks::Outcome;

/// Applies the decisions to `envelope` and returns the content filter to
/// record with it. `rewrite` maps the BCC recipients (given with the
/// envelope) as the envelope's were mapped; its error (a table that
/// loops) defers the message.
pub fn apply(
    envelope: &mut Envelope,
    smtpd: &Actions,
    checks: &Outcome,
    rewrite: impl FnOnce(&Envelope, Vec<Recipient>) -> Result<Vec<Recipient>, SmtpReply>,
) -> Result<Option<String>, SmtpReply> {
    if let Some(to) = checks.redirect.as_ref().or(smtpd.redirect.as_ref()) {
        envelope.recipients = vec![Recipient::new(to.clone(), None)];
        return Ok(None);
    }
    let bcc: Vec<Recipient> = smtpd
        .bcc
        .iter()
        .chain(&checks.bcc)
        // As Postfix adds them (smtpd.c, cleanup_addr_bcc): NOTIFY=NEVER,
        // so no notice to the sender names a BCC recipient.
        .map(|address| Recipient::never_notify(address.clone()))
        .collect();
    if !bcc.is_empty() {
        for recipient in rewrite(envelope, bcc)? {
            // An address that already is a recipient gets one copy.
            if !envelope
                .recipients
                .iter()
                .any(|r| r.address.eq_ignore_ascii_case(&recipient.address))
            {
                envelope.recipients.push(recipient);
            }
        }
    }
    Ok(checks.filter.clone().or_else(|| smtpd.filter.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(recipients: &[&str]) -> Envelope {
        Envelope {
            sender: "s@example.org".into(),
            recipients: recipients
                .iter()
                .map(|r| Recipient::new(r.to_string(), None))
                .collect(),
            client: mailgate_ipc::envelope::ClientInfo {
                name: "localhost".into(),
                addr: "127.0.0.1".into(),
                port: 0,
                helo: "client.example.org".into(),
                protocol: "ESMTP".into(),
            },
            body_type: None,
            smtputf8: false,
            dsn_ret: None,
            dsn_envid: None,
            arrival: 0,
        }
    }

    fn addresses(e: &Envelope) -> Vec<&str> {
        e.recipients.iter().map(|r| r.address.as_str()).collect()
    }

    fn unchanged(_: &Envelope, r: Vec<Recipient>) -> Result<Vec<Recipient>, SmtpReply> {
        Ok(r)
    }

    #[test]
    fn the_checks_filter_wins_over_smtpds() {
        let mut e = envelope(&["a@example.com"]);
        let smtpd = Actions {
            filter: Some("smtp-amavis:[127.0.0.1]:10024".into()),
            ..Actions::default()
        };
        let none = Outcome::default();
        assert_eq!(
            apply(&mut e, &smtpd, &none, unchanged).unwrap().as_deref(),
            Some("smtp-amavis:[127.0.0.1]:10024")
        );
        let checks = Outcome {
            filter: Some("smtp:[127.0.0.1]:10025".into()),
            ..Outcome::default()
        };
        assert_eq!(
            apply(&mut e, &smtpd, &checks, unchanged)
                .unwrap()
                .as_deref(),
            Some("smtp:[127.0.0.1]:10025")
        );
        assert_eq!(addresses(&e), ["a@example.com"]);
    }

    #[test]
    fn bcc_adds_rewritten_recipients_once() {
        let mut e = envelope(&["a@example.com"]);
        let smtpd = Actions {
            bcc: vec!["audit@example.com".into()],
            ..Actions::default()
        };
        let checks = Outcome {
            bcc: vec!["A@example.com".into(), "copy@old.example".into()],
            ..Outcome::default()
        };
        let filter = apply(&mut e, &smtpd, &checks, |_, r| {
            Ok(r.into_iter()
                .map(|mut r| {
                    r.address = r.address.replace("@old.example", "@example.com");
                    r
                })
                .collect())
        })
        .unwrap();
        assert_eq!(filter, None);
        assert_eq!(
            addresses(&e),
            ["a@example.com", "audit@example.com", "copy@example.com"]
        );
        // The sender is told about its own recipient, never about the BCCs
        // (the one that already was a recipient keeps its own notices).
        let never: Vec<bool> = e.recipients.iter().map(|r| r.notify_never).collect();
        assert_eq!(never, [false, true, true]);
    }

    #[test]
    fn redirect_overrides_filter_and_bcc() {
        let mut e = envelope(&["a@example.com", "b@example.com"]);
        let smtpd = Actions {
            redirect: Some("first@example.com".into()),
            filter: Some("smtp-amavis:[127.0.0.1]:10024".into()),
            bcc: vec!["audit@example.com".into()],
            ..Actions::default()
        };
        let checks = Outcome {
            redirect: Some("last@example.com".into()),
            filter: Some("smtp:[127.0.0.1]:10025".into()),
            ..Outcome::default()
        };
        let filter = apply(&mut e, &smtpd, &checks, |_, _| panic!("BCC not rewritten")).unwrap();
        assert_eq!(filter, None);
        assert_eq!(addresses(&e), ["last@example.com"]);
        // smtpd's REDIRECT alone does the same.
        let mut e = envelope(&["a@example.com"]);
        let filter = apply(&mut e, &smtpd, &Outcome::default(), unchanged).unwrap();
        assert_eq!(filter, None);
        assert_eq!(addresses(&e), ["first@example.com"]);
    }

    #[test]
    fn a_rewriting_error_defers() {
        let mut e = envelope(&["a@example.com"]);
        let checks = Outcome {
            bcc: vec!["loop@example.com".into()],
            ..Outcome::default()
        };
        let reply = SmtpReply {
            code: 451,
            status: "4.6.0".into(),
            text: "Alias expansion error".into(),
        };
        let got = apply(&mut e, &Actions::default(), &checks, |_, _| {
            Err(reply.clone())
        });
        assert_eq!(got, Err(reply));
    }
}
