//! A policy request: every attribute Postfix 3.x sends, typed, in the
//! order Postfix sends them (SMTPD_POLICY_README; smtpd_check.c).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::wire::{ProtocolError, clean_value};

/// The SMTP stages at which Postfix's smtpd asks a policy server.
pub mod state {
    pub const CONNECT: &str = "CONNECT";
    pub const EHLO: &str = "EHLO";
    pub const HELO: &str = "HELO";
    pub const MAIL: &str = "MAIL";
    pub const RCPT: &str = "RCPT";
    /// Also for BDAT, as Postfix 3.4 and later.
    pub const DATA: &str = "DATA";
    pub const END_OF_MESSAGE: &str = "END-OF-MESSAGE";
    pub const VRFY: &str = "VRFY";
    pub const ETRN: &str = "ETRN";
}

/// The request type of an SMTP server's access policy query.
pub const SMTPD_ACCESS_POLICY: &str = "smtpd_access_policy";

/// One policy request. Empty strings (and zero numbers) are "unavailable",
/// which Postfix sends as `name=` (`name=0`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `smtpd_access_policy` for an SMTP server's query.
    pub request: String,
    /// CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY or ETRN
    /// (see [`state`]).
    pub protocol_state: String,
    /// SMTP or ESMTP.
    pub protocol_name: String,
    pub client_address: String,
    /// The verified client name, or `unknown`.
    pub client_name: String,
    pub client_port: String,
    /// The client name from the reverse lookup alone, or `unknown`.
    pub reverse_client_name: String,
    pub server_address: String,
    pub server_port: String,
    pub helo_name: String,
    pub sender: String,
    pub recipient: String,
    /// Non-zero only at DATA and END-OF-MESSAGE.
    pub recipient_count: u64,
    pub queue_id: String,
    /// The same for every request about one message on one connection.
    pub instance: String,
    pub size: u64,
    /// Set only at ETRN; present (empty) otherwise, which tells a server it
    /// talks to Postfix 2.3 or later.
    pub etrn_domain: String,
    /// `yes` when the server is overloaded, otherwise empty.
    pub stress: String,
    pub sasl_method: String,
    pub sasl_username: String,
    pub sasl_sender: String,
    /// xtext-encoded, as Postfix sends them.
    pub ccert_subject: String,
    pub ccert_issuer: String,
    pub ccert_fingerprint: String,
    pub ccert_pubkey_fingerprint: String,
    pub encryption_protocol: String,
    pub encryption_cipher: String,
    pub encryption_keysize: u64,
    pub tls_sni: String,
    pub policy_context: String,
    pub compatibility_level: String,
    pub mail_version: String,
    /// Attributes this library does not know, in the order received.
    pub extra: Vec<(String, String)>,
}

/// Which attributes hold numbers.
const NUMERIC: [&str; 3] = ["recipient_count", "size", "encryption_keysize"];

impl Request {
    /// An SMTP server's access policy query at `protocol_state`.
    pub fn smtpd(protocol_state: &str) -> Request {
        Request {
            request: SMTPD_ACCESS_POLICY.to_string(),
            protocol_state: protocol_state.to_string(),
            ..Request::default()
        }
    }

    /// The attributes in Postfix's order, as name and text.
    pub fn attributes(&self) -> Vec<(&str, Cow<'_, str>)> {
        fn text(v: &str) -> Cow<'_, str> {
            Cow::Borrowed(v)
        }
        fn number<'a>(v: u64) -> Cow<'a, str> {
            Cow::Owned(v.to_string())
        }
        let mut out = vec![
            ("request", text(&self.request)),
            ("protocol_state", text(&self.protocol_state)),
            ("protocol_name", text(&self.protocol_name)),
            ("client_address", text(&self.client_address)),
            ("client_name", text(&self.client_name)),
            ("client_port", text(&self.client_port)),
            ("reverse_client_name", text(&self.reverse_client_name)),
            ("server_address", text(&self.server_address)),
            ("server_port", text(&self.server_port)),
            ("helo_name", text(&self.helo_name)),
            ("sender", text(&self.sender)),
            ("recipient", text(&self.recipient)),
            ("recipient_count", number(self.recipient_count)),
            ("queue_id", text(&self.queue_id)),
            ("instance", text(&self.instance)),
            ("size", number(self.size)),
            ("etrn_domain", text(&self.etrn_domain)),
            ("stress", text(&self.stress)),
            ("sasl_method", text(&self.sasl_method)),
            ("sasl_username", text(&self.sasl_username)),
            ("sasl_sender", text(&self.sasl_sender)),
            ("ccert_subject", text(&self.ccert_subject)),
            ("ccert_issuer", text(&self.ccert_issuer)),
            ("ccert_fingerprint", text(&self.ccert_fingerprint)),
            (
                "ccert_pubkey_fingerprint",
                text(&self.ccert_pubkey_fingerprint),
            ),
            ("encryption_protocol", text(&self.encryption_protocol)),
            ("encryption_cipher", text(&self.encryption_cipher)),
            ("encryption_keysize", number(self.encryption_keysize)),
            ("tls_sni", text(&self.tls_sni)),
            ("policy_context", text(&self.policy_context)),
            ("compatibility_level", text(&self.compatibility_level)),
            ("mail_version", text(&self.mail_version)),
        ];
        out.extend(self.extra.iter().map(|(n, v)| (n.as_str(), text(v))));
        out
    }

    /// The request as sent: one `name=value` line per attribute and an
    /// empty line. Values lose newlines, carriage returns and NULs (as `?`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        for (name, value) in self.attributes() {
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(clean_value(&value).as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out
    }

    /// Builds a request from received attributes. When a name repeats, the
    /// last value counts (the README allows either). A numeric attribute
    /// that is not a number is an error; an empty one is zero.
    pub fn from_attributes(attributes: Vec<(String, String)>) -> Result<Request, ProtocolError> {
        let mut request = Request::default();
        for (name, value) in attributes {
            if NUMERIC.contains(&name.as_str()) {
                let number = if value.is_empty() {
                    0
                } else {
                    value.parse::<u64>().map_err(|_| ProtocolError::BadNumber {
                        name: name.clone(),
                        value: value.clone(),
                    })?
                };
                match name.as_str() {
                    "recipient_count" => request.recipient_count = number,
                    "size" => request.size = number,
                    _ => request.encryption_keysize = number,
                }
                continue;
            }
            let slot = match name.as_str() {
                "request" => &mut request.request,
                "protocol_state" => &mut request.protocol_state,
                "protocol_name" => &mut request.protocol_name,
                "client_address" => &mut request.client_address,
                "client_name" => &mut request.client_name,
                "client_port" => &mut request.client_port,
                "reverse_client_name" => &mut request.reverse_client_name,
                "server_address" => &mut request.server_address,
                "server_port" => &mut request.server_port,
                "helo_name" => &mut request.helo_name,
                "sender" => &mut request.sender,
                "recipient" => &mut request.recipient,
                "queue_id" => &mut request.queue_id,
                "instance" => &mut request.instance,
                "etrn_domain" => &mut request.etrn_domain,
                "stress" => &mut request.stress,
                "sasl_method" => &mut request.sasl_method,
                "sasl_username" => &mut request.sasl_username,
                "sasl_sender" => &mut request.sasl_sender,
                "ccert_subject" => &mut request.ccert_subject,
                "ccert_issuer" => &mut request.ccert_issuer,
                "ccert_fingerprint" => &mut request.ccert_fingerprint,
                "ccert_pubkey_fingerprint" => &mut request.ccert_pubkey_fingerprint,
                "encryption_protocol" => &mut request.encryption_protocol,
                "encryption_cipher" => &mut request.encryption_cipher,
                "tls_sni" => &mut request.tls_sni,
                "policy_context" => &mut request.policy_context,
                "compatibility_level" => &mut request.compatibility_level,
                "mail_version" => &mut request.mail_version,
                _ => {
                    request.extra.retain(|(n, _)| *n != name);
                    request.extra.push((name, value));
                    continue;
                }
            };
            *slot = value;
        }
        Ok(request)
    }
}

/// A fresh `instance` value, unique per process and message, in Postfix's
/// form (`pid.seconds.microseconds.counter`, in hexadecimal).
pub fn new_instance() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}.{:x}.{:x}.{:x}",
        std::process::id(),
        now.as_secs(),
        now.subsec_micros(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Request {
        Request {
            protocol_name: "ESMTP".into(),
            client_address: "192.0.2.7".into(),
            client_name: "mx.example.org".into(),
            reverse_client_name: "mx.example.org".into(),
            helo_name: "mx.example.org".into(),
            sender: "a@example.org".into(),
            recipient: "b@example.com".into(),
            instance: "1.2.3.4".into(),
            size: 1234,
            encryption_keysize: 256,
            extra: vec![("x_custom".into(), "1".into())],
            ..Request::smtpd(state::RCPT)
        }
    }

    #[test]
    fn encoding_lists_every_postfix_attribute_in_order_then_an_empty_line() {
        let text = String::from_utf8(sample().encode()).unwrap();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(n, _)| n))
            .collect();
        assert_eq!(names.len(), 33);
        assert_eq!(
            &names[..4],
            [
                "request",
                "protocol_state",
                "protocol_name",
                "client_address"
            ]
        );
        assert_eq!(names[names.len() - 1], "x_custom");
        for name in [
            "reverse_client_name",
            "recipient_count",
            "instance",
            "sasl_username",
            "ccert_pubkey_fingerprint",
            "encryption_keysize",
            "etrn_domain",
            "stress",
            "server_address",
            "server_port",
            "policy_context",
            "compatibility_level",
            "mail_version",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert!(text.starts_with("request=smtpd_access_policy\nprotocol_state=RCPT\n"));
        assert!(text.contains("\nsize=1234\n") && text.contains("\nrecipient_count=0\n"));
        assert!(text.ends_with("x_custom=1\n\n"));
    }

    #[test]
    fn a_request_survives_encoding_and_parsing() {
        let request = sample();
        let text = String::from_utf8(request.encode()).unwrap();
        let attributes: Vec<(String, String)> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once('=').unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        assert_eq!(Request::from_attributes(attributes).unwrap(), request);
    }

    #[test]
    fn hostile_values_cannot_inject_attributes() {
        let request = Request {
            helo_name: "evil\n\naction=OK".into(),
            ..Request::smtpd(state::HELO)
        };
        let text = String::from_utf8(request.encode()).unwrap();
        assert!(text.contains("helo_name=evil??action=OK\n"), "{text}");
        assert_eq!(text.matches("\n\n").count(), 1);
    }

    #[test]
    fn numbers_are_checked_and_repeats_keep_the_last() {
        let attrs = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let e = Request::from_attributes(attrs(&[("size", "12k")])).unwrap_err();
        assert_eq!(e.to_string(), "attribute size: \"12k\" is not a number");
        let r = Request::from_attributes(attrs(&[
            ("size", ""),
            ("sender", "a"),
            ("sender", "b"),
            ("other", "1"),
            ("other", "2"),
        ]))
        .unwrap();
        assert_eq!((r.size, r.sender.as_str()), (0, "b"));
        assert_eq!(r.extra, attrs(&[("other", "2")]));
    }

    #[test]
    fn instances_differ() {
        assert_ne!(new_instance(), new_instance());
        assert_eq!(new_instance().split('.').count(), 4);
    }
}
