//! The envelope's addresses rewritten as main.cf's canonical and virtual
//! alias maps say (libs/config's `Rewriting`, Postfix's semantics), then
//! the local recipients (mydestination) expanded through alias_maps (what
//! Postfix's local(8) does at delivery; a gateway forwards them inward),
//! before the checks, the scanner and the queue file see them.

use mailgate_config::{LocalRecipients, RewriteError, Rewriting};
use mailgate_ipc::envelope::{Envelope, Recipient, SmtpReply};
use mailgate_log::warning;

/// Rewrites the sender and expands every recipient. An address that a
/// table changed keeps what the client sent as its original recipient
/// (ORCPT, for delivery status notifications), as Postfix does. When a
/// table loops or explodes, the message is deferred as Postfix defers it.
pub fn apply(
    rewriting: Option<&Rewriting>,
    local: Option<&LocalRecipients>,
    queue_id: &str,
    envelope: &mut Envelope,
) -> Result<(), SmtpReply> {
    let rewriting = rewriting.filter(|r| !r.is_empty());
    if rewriting.is_none() && local.is_none() {
        return Ok(());
    }
    let deferred = |e: RewriteError| {
        warning!("{queue_id}: {e} -- message not accepted, try again later");
        SmtpReply {
            code: 451,
            status: "4.6.0".into(),
            text: "Alias expansion error".into(),
        }
    };
    if let Some(rewriting) = rewriting {
        envelope.sender = rewriting.sender(&envelope.sender).map_err(deferred)?;
    }
    let mut out: Vec<Recipient> = Vec::with_capacity(envelope.recipients.len());
    for recipient in std::mem::take(&mut envelope.recipients) {
        let rewritten = match rewriting {
            Some(r) => r.recipient(&recipient.address).map_err(deferred)?,
            None => vec![recipient.address.clone()],
        };
        let mut addresses = Vec::with_capacity(rewritten.len());
        for address in rewritten {
            match local {
                Some(l) => addresses.extend(l.expand(&address).map_err(deferred)?),
                None => addresses.push(address),
            }
        }
        let original = recipient
            .original
            .clone()
            .or_else(|| Some(format!("rfc822;{}", xtext(&recipient.address))));
        for address in addresses {
            // The same address reached twice (two recipients aliased to
            // one person) is delivered once.
            if out.iter().any(|r| r.address.eq_ignore_ascii_case(&address)) {
                continue;
            }
            if address == recipient.address {
                out.push(recipient.clone());
            } else {
                // What the recipient's notices are, its expansion's are.
                out.push(Recipient {
                    notify_never: recipient.notify_never,
                    ..Recipient::new(address, original.clone())
                });
            }
        }
    }
    envelope.recipients = out;
    Ok(())
}

/// RFC 3461 xtext: '+', '=' and what is not printable ASCII as +XX.
fn xtext(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    for b in address.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn xtext_encodes_plus_equals_and_controls() {
        assert_eq!(super::xtext("a+b=c@x"), "a+2Bb+3Dc@x");
        assert_eq!(super::xtext("plain@x"), "plain@x");
    }
}
