//! What a service accepts from its peers. A request is decoded from bytes
//! another process wrote, and that process may be compromised: every field
//! is checked here before a service uses it (queue IDs by their grammar,
//! addresses and names without control characters and within bounds,
//! counts bounded), and a message descriptor must be a sealed memory file of
//! the size the request announced.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::AsFd;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};

use crate::envelope::{ClientInfo, Envelope, RecipientState};
use crate::protocol::{anvil, cleanup, delivery, qmgr, scanner, verify};
use crate::spool::is_queue_id;

/// Longest address, ORCPT, HELO name or host name accepted: a whole SMTP
/// command line as Postfix's line_length_limit (2048) bounds it.
pub const MAX_NAME: usize = 2048;
/// Most recipients in one request (Postfix's smtpd_recipient_limit is 1000
/// by default; qmgr splits deliveries further).
pub const MAX_RECIPIENTS: usize = 100_000;
/// Longest transport name or next hop.
pub const MAX_ROUTE: usize = 1024;

/// A request field that is not what a mailgate process sends.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid request: {}", self.0)
    }
}

impl std::error::Error for Invalid {}

fn invalid<T>(what: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(what.into()))
}

/// A queue ID by the grammar the spool uses: nothing else may name a file.
pub fn queue_id(id: &str) -> Result<(), Invalid> {
    if is_queue_id(id) {
        Ok(())
    } else {
        invalid(format!("queue ID {:?}", shorten(id)))
    }
}

/// A name, address or text: bounded, no control characters (they would
/// break the queue file's headers, the log and the SMTP dialogue).
pub fn text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.len() > max {
        return invalid(format!("{field} of {} bytes", value.len()));
    }
    if value.chars().any(char::is_control) {
        return invalid(format!("{field} with a control character"));
    }
    Ok(())
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

fn client(c: &ClientInfo) -> Result<(), Invalid> {
    text("client name", &c.name, MAX_NAME)?;
    text("HELO name", &c.helo, MAX_NAME)?;
    text("protocol", &c.protocol, 16)?;
    if c.addr.parse::<IpAddr>().is_err() {
        return invalid(format!("client address {:?}", shorten(&c.addr)));
    }
    Ok(())
}

/// The envelope of a message handed to cleanup: a new message, whose
/// recipients are all still to be delivered.
pub fn new_envelope(e: &Envelope) -> Result<(), Invalid> {
    text("sender", &e.sender, MAX_NAME)?;
    if e.recipients.is_empty() || e.recipients.len() > MAX_RECIPIENTS {
        return invalid(format!("{} recipients", e.recipients.len()));
    }
    for r in &e.recipients {
        text("recipient", &r.address, MAX_NAME)?;
        if r.address.is_empty() {
            return invalid("an empty recipient");
        }
        if let Some(orcpt) = &r.original {
            text("ORCPT", orcpt, MAX_NAME)?;
        }
        let fresh = r.state == RecipientState::Pending
            && r.last_reason.is_none()
            && r.last_status.is_none()
            && !r.notified;
        if !fresh {
            return invalid("a recipient with a delivery state");
        }
    }
    client(&e.client)?;
    if let Some(ret) = &e.dsn_ret
        && !matches!(ret.as_str(), "FULL" | "HDRS")
    {
        return invalid("RET other than FULL or HDRS");
    }
    if let Some(envid) = &e.dsn_envid {
        // RFC 3461: at most 100 characters of xtext.
        text("ENVID", envid, 100)?;
    }
    Ok(())
}

/// Every request a service decodes implements this.
pub trait Validate {
    fn validate(&self) -> Result<(), Invalid>;
}

/// Most header lines an access action may prepend.
pub const MAX_PREPEND: usize = 100;

/// smtpd's access actions: addresses as in an envelope; each prepended
/// line one header field (`Name: value`), which cannot break the header
/// block it goes into.
pub fn actions(a: &cleanup::Actions) -> Result<(), Invalid> {
    if let Some(to) = &a.redirect {
        text("REDIRECT address", to, MAX_NAME)?;
    }
    if a.bcc.len() > MAX_RECIPIENTS {
        return invalid(format!("{} BCC recipients", a.bcc.len()));
    }
    for bcc in &a.bcc {
        text("BCC address", bcc, MAX_NAME)?;
    }
    if a.prepend.len() > MAX_PREPEND {
        return invalid(format!("{} header lines to prepend", a.prepend.len()));
    }
    for line in &a.prepend {
        text("prepended header", line, MAX_NAME)?;
        let name = line.split_once(':').map(|(name, _)| name).unwrap_or("");
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("a prepended line that is not a header field");
        }
    }
    sender_auth(&a.sender_auth)
}

impl Validate for cleanup::Request {
    fn validate(&self) -> Result<(), Invalid> {
        match self {
            cleanup::Request::Begin => Ok(()),
            cleanup::Request::Commit {
                envelope,
                actions: a,
                ..
            } => {
                new_envelope(envelope)?;
                actions(a)
            }
        }
    }
}

impl Validate for scanner::Request {
    fn validate(&self) -> Result<(), Invalid> {
        queue_id(&self.queue_id)?;
        text("sender", &self.sender, MAX_NAME)?;
        if self.recipients.len() > MAX_RECIPIENTS {
            return invalid(format!("{} recipients", self.recipients.len()));
        }
        for r in &self.recipients {
            text("recipient", r, MAX_NAME)?;
        }
        client(&self.client)?;
        sender_auth(&self.sender_auth)?;
        // One Received header, folded: its names are bounded above.
        if self.received.len() > 4 * MAX_NAME + 1024 {
            return invalid(format!("Received header of {} bytes", self.received.len()));
        }
        Ok(())
    }
}

/// smtpd's SPF results: the domains checked are names.
fn sender_auth(auth: &crate::auth::SenderAuth) -> Result<(), Invalid> {
    for check in [&auth.helo, &auth.mail_from].into_iter().flatten() {
        text("SPF domain", &check.domain, MAX_NAME)?;
    }
    Ok(())
}

impl Validate for qmgr::Request {
    fn validate(&self) -> Result<(), Invalid> {
        match self {
            qmgr::Request::Act {
                target: qmgr::Target::Ids(ids),
                ..
            } => {
                if ids.len() > MAX_RECIPIENTS {
                    return invalid(format!("{} queue IDs", ids.len()));
                }
                ids.iter().try_for_each(|id| queue_id(id))
            }
            _ => Ok(()),
        }
    }
}

impl Validate for delivery::Request {
    fn validate(&self) -> Result<(), Invalid> {
        queue_id(&self.queue_id)?;
        text("transport", &self.transport, MAX_ROUTE)?;
        text("next hop", &self.nexthop, MAX_ROUTE)?;
        text("sender", &self.sender, MAX_NAME)?;
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            return invalid(format!("{} recipients", self.recipients.len()));
        }
        for r in &self.recipients {
            text("recipient", &r.address, MAX_NAME)?;
            if let Some(orcpt) = &r.original {
                text("ORCPT", orcpt, MAX_NAME)?;
            }
            if r.index >= MAX_RECIPIENTS {
                return invalid(format!("recipient index {}", r.index));
            }
        }
        if self
            .content_offset
            .checked_add(self.content_length)
            .is_none()
        {
            return invalid("content range");
        }
        Ok(())
    }
}

impl Validate for delivery::Probe {
    fn validate(&self) -> Result<(), Invalid> {
        text("transport", &self.transport, MAX_ROUTE)?;
        text("next hop", &self.nexthop, MAX_ROUTE)?;
        text("sender", &self.sender, MAX_NAME)?;
        text("recipient", &self.recipient, MAX_NAME)?;
        if self.recipient.is_empty() {
            return invalid("an empty recipient");
        }
        Ok(())
    }
}

impl Validate for verify::Request {
    fn validate(&self) -> Result<(), Invalid> {
        let verify::Request::Query { address } = self;
        text("address", address, MAX_NAME)?;
        if address.is_empty() {
            return invalid("an empty address");
        }
        Ok(())
    }
}

/// Longest master.cf service name in an anvil request.
pub const MAX_SERVICE: usize = 256;

impl Validate for anvil::Request {
    fn validate(&self) -> Result<(), Invalid> {
        let (anvil::Request::Connect { service, client }
        | anvil::Request::Disconnect { service, client }
        | anvil::Request::Rate {
            service, client, ..
        }) = self;
        text("service", service, MAX_SERVICE)?;
        if service.is_empty() || service.contains(char::is_whitespace) {
            return invalid(format!("service name {:?}", shorten(service)));
        }
        if client.is_unspecified() {
            return invalid("the unspecified client address");
        }
        Ok(())
    }
}

/// Checks that a message descriptor is a memory file sealed against
/// writing, growing and shrinking (so what this process reads is what the
/// scanner and the queue file get, whatever the sender does later), of the
/// announced size, and no larger than `limit`. Returns its size.
pub fn sealed_content(fd: &impl AsFd, announced: u64, limit: u64) -> Result<u64, Invalid> {
    let stat = nix::sys::stat::fstat(fd).map_err(|e| Invalid(format!("content: {e}")))?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return invalid("content that is not a file");
    }
    let seals = match fcntl(fd, FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_truncate(bits),
        Err(_) => return invalid("content that is not a sealed memory file"),
    };
    let needed = SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SHRINK;
    if !seals.contains(needed) {
        return invalid("content that is not sealed (it could still change)");
    }
    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
    if size != announced {
        return invalid(format!("content of {size} bytes, {announced} announced"));
    }
    if size > limit {
        return invalid(format!("content of {size} bytes (limit {limit})"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Recipient;
    use crate::submit::{local_client, sealed_content as seal};
    use std::io::Write;

    fn envelope() -> Envelope {
        Envelope {
            sender: "a@example.org".into(),
            recipients: vec![Recipient::new("b@example.com".into(), None)],
            client: local_client(),
            body_type: None,
            smtputf8: false,
            dsn_ret: None,
            dsn_envid: None,
            arrival: 0,
        }
    }

    #[test]
    fn queue_ids_are_checked_by_grammar() {
        assert!(queue_id("0661BBD4B00960").is_ok());
        for bad in ["../public/cleanup", "", "a/b", "x.tmp", &"A".repeat(33)] {
            assert!(queue_id(bad).is_err(), "{bad}");
        }
        let act = qmgr::Request::Act {
            action: qmgr::Action::Delete,
            target: qmgr::Target::Ids(vec!["../public/cleanup".into()]),
        };
        assert!(act.validate().is_err());
    }

    #[test]
    fn envelopes_from_peers_are_checked() {
        assert!(new_envelope(&envelope()).is_ok());
        let mut e = envelope();
        e.sender = "a@b\r\nX-Injected: 1".into();
        assert!(new_envelope(&e).is_err());
        let mut e = envelope();
        e.recipients.clear();
        assert!(new_envelope(&e).is_err());
        let mut e = envelope();
        e.recipients[0].state = RecipientState::Delivered;
        assert!(new_envelope(&e).is_err());
        let mut e = envelope();
        e.client.addr = "not an address".into();
        assert!(new_envelope(&e).is_err());
        let mut e = envelope();
        e.recipients[0].address = "x".repeat(MAX_NAME + 1);
        assert!(new_envelope(&e).is_err());
    }

    #[test]
    fn probes_and_verify_queries_are_checked() {
        let probe = delivery::Probe {
            transport: "smtp".into(),
            nexthop: "[10.0.0.5]:25".into(),
            sender: String::new(),
            recipient: "bob@example.com".into(),
        };
        assert!(probe.validate().is_ok());
        for bad in ["", "a@b\r\nDATA", &"x".repeat(MAX_NAME + 1)] {
            let mut p = probe.clone();
            p.recipient = bad.to_string();
            assert!(p.validate().is_err(), "{bad:?}");
        }
        let mut p = probe.clone();
        p.nexthop = "x\0y".into();
        assert!(p.validate().is_err());
        let query = |a: &str| verify::Request::Query { address: a.into() }.validate();
        assert!(query("bob@example.com").is_ok());
        assert!(query("").is_err());
        assert!(query("a\nb").is_err());
    }

    #[test]
    fn anvil_requests_are_checked() {
        let connect = |service: &str, client: &str| anvil::Request::Connect {
            service: service.into(),
            client: client.parse().unwrap(),
        };
        assert!(connect("127.0.0.1:2525", "192.0.2.1").validate().is_ok());
        assert!(connect("smtp", "2001:db8::1").validate().is_ok());
        assert!(connect("", "192.0.2.1").validate().is_err());
        assert!(connect("a\nb", "192.0.2.1").validate().is_err());
        assert!(connect("a b", "192.0.2.1").validate().is_err());
        assert!(
            connect(&"x".repeat(MAX_SERVICE + 1), "192.0.2.1")
                .validate()
                .is_err()
        );
        assert!(connect("smtp", "0.0.0.0").validate().is_err());
        let rate = anvil::Request::Rate {
            service: "smtp".into(),
            client: "::".parse().unwrap(),
            event: anvil::Event::Auth,
        };
        assert!(rate.validate().is_err());
    }

    #[test]
    fn access_actions_cannot_break_the_header() {
        let mut a = cleanup::Actions::default();
        assert!(actions(&a).is_ok());
        a.prepend = vec!["X-Checked: yes".into()];
        assert!(actions(&a).is_ok());
        for bad in [
            "X-A: 1\r\nBcc: evil@example.org",
            "no header here",
            ": empty",
        ] {
            a.prepend = vec![bad.into()];
            assert!(actions(&a).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_must_be_sealed_and_as_announced() {
        let sealed = seal(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let fd = sealed.as_fd();
        assert_eq!(sealed_content(&fd, 20, 100), Ok(20));
        assert!(sealed_content(&fd, 19, 100).is_err());
        assert!(sealed_content(&fd, 20, 10).is_err());
        let mut plain = tempfile::tempfile().unwrap();
        plain.write_all(b"changeable").unwrap();
        let e = sealed_content(&plain, 10, 100).unwrap_err();
        assert!(e.0.contains("not a sealed memory file"), "{e}");
        let unsealed =
            nix::sys::memfd::memfd_create(c"x", nix::sys::memfd::MFdFlags::MFD_ALLOW_SEALING)
                .unwrap();
        let e = sealed_content(&unsealed, 0, 100).unwrap_err();
        assert!(e.0.contains("not sealed"), "{e}");
    }
}
