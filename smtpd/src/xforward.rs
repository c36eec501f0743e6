//! After-queue content filtering, smtpd's part: the content filter the
//! mail of this service goes to (content_filter), what a re-injection
//! service turns off (receive_override_options), and the XFORWARD command
//! a filter uses to name the original client (Postfix's XFORWARD_README).

use std::net::IpAddr;
use std::path::Path;

use mailgate_config::{MainConfig, NetworkList};

use crate::reply::Reply;
use crate::settings::SettingsError;

/// The EHLO line for clients in smtpd_authorized_xforward_hosts.
pub const EHLO_LINE: &str = "XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT";

/// Longest attribute value kept (Postfix's limits are of this order).
const MAX_VALUE: usize = 255;

/// What content filtering asks of this smtpd service.
#[derive(Clone, Debug)]
pub struct Filtering {
    /// content_filter: `transport:nexthop` every message accepted here goes
    /// to after the queue; None when empty (the filter's return service).
    pub content_filter: Option<String>,
    /// receive_override_options.
    pub overrides: ReceiveOverrides,
    /// smtpd_authorized_xforward_hosts.
    pub xforward_hosts: NetworkList,
}

/// receive_override_options, as Postfix's: what a re-injection service
/// skips because the mail was checked on its way in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiveOverrides {
    pub no_unknown_recipient_checks: bool,
    pub no_header_body_checks: bool,
    pub no_address_mappings: bool,
    pub no_milters: bool,
}

impl ReceiveOverrides {
    pub fn parse(items: &[String]) -> Result<ReceiveOverrides, String> {
        let mut o = ReceiveOverrides::default();
        for item in items {
            match item.to_ascii_lowercase().as_str() {
                "no_unknown_recipient_checks" => o.no_unknown_recipient_checks = true,
                "no_header_body_checks" => o.no_header_body_checks = true,
                "no_address_mappings" => o.no_address_mappings = true,
                // mailgate runs no milters, so there are none to skip.
                "no_milters" => o.no_milters = true,
                other => {
                    return Err(format!(
                        "unknown option \"{other}\" (expected no_unknown_recipient_checks, \
                         no_header_body_checks, no_address_mappings or no_milters)"
                    ));
                }
            }
        }
        Ok(o)
    }
}

impl Filtering {
    pub fn load(config: &MainConfig, dir: &Path) -> Result<Filtering, SettingsError> {
        let fail = |parameter: &'static str, problems: Vec<String>| SettingsError::Config {
            parameter,
            problems,
        };
        let filter = config.get("content_filter").trim().to_string();
        let content_filter = match filter.as_str() {
            "" => None,
            f if f.contains(':') && !f.starts_with(':') => Some(filter.clone()),
            _ => {
                return Err(fail(
                    "content_filter",
                    vec![format!("\"{filter}\": expected transport:nexthop")],
                ));
            }
        };
        let overrides = ReceiveOverrides::parse(&config.list("receive_override_options"))
            .map_err(|e| fail("receive_override_options", vec![e]))?;
        let xforward_hosts =
            NetworkList::parse(&config.list("smtpd_authorized_xforward_hosts"), dir).map_err(
                |e| {
                    fail(
                        "smtpd_authorized_xforward_hosts",
                        e.into_diagnostics().iter().map(|d| d.to_string()).collect(),
                    )
                },
            )?;
        Ok(Filtering {
            content_filter,
            overrides,
            xforward_hosts,
        })
    }
}

/// The client attributes XFORWARD gave for the current transaction; each
/// None until given (or given as `[UNAVAILABLE]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub name: Option<String>,
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub proto: Option<String>,
    pub helo: Option<String>,
    pub ident: Option<String>,
    pub source: Option<String>,
}

impl Forwarded {
    /// Applies one XFORWARD command's `NAME=value ...` list; nothing is
    /// changed when any part of it is bad.
    pub fn apply(&mut self, arg: &str) -> Result<(), Reply> {
        if arg.trim().is_empty() {
            return Err(Reply::new(501, "5.5.4 Syntax: XFORWARD attribute=value..."));
        }
        let mut next = self.clone();
        for item in arg.split_ascii_whitespace() {
            let Some((name, raw)) = item.split_once('=') else {
                return Err(Reply::new(501, "5.5.4 Syntax: XFORWARD attribute=value..."));
            };
            let value = xtext_decode(raw)
                .ok_or_else(|| Reply::new(501, format!("5.5.4 Bad {name} syntax: {raw}")))?;
            let unavailable = value == "[UNAVAILABLE]" || value == "[TEMPUNAVAIL]";
            let bad = || Reply::new(501, format!("5.5.4 Bad XFORWARD {name} syntax: {raw}"));
            let text = |value: &str| -> Result<Option<String>, Reply> {
                if unavailable {
                    return Ok(None);
                }
                if value.len() > MAX_VALUE
                    || value.is_empty()
                    || value.bytes().any(|b| !(b'!'..=b'~').contains(&b))
                {
                    return Err(bad());
                }
                Ok(Some(value.to_string()))
            };
            match name.to_ascii_uppercase().as_str() {
                "NAME" => next.name = text(&value)?,
                "HELO" => next.helo = text(&value)?,
                "IDENT" => next.ident = text(&value)?,
                "PROTO" => next.proto = text(&value)?,
                "SOURCE" => next.source = text(&value)?,
                "ADDR" => {
                    next.addr = match text(&value)? {
                        None => None,
                        Some(v) => {
                            let bare = v.strip_prefix("IPv6:").unwrap_or(&v);
                            Some(bare.parse::<IpAddr>().map_err(|_| bad())?)
                        }
                    }
                }
                "PORT" => {
                    next.port = match text(&value)? {
                        None => None,
                        Some(v) => Some(v.parse::<u16>().map_err(|_| bad())?),
                    }
                }
                _ => {
                    return Err(Reply::new(
                        501,
                        format!("5.5.4 Bad XFORWARD attribute name: {name}"),
                    ));
                }
            }
        }
        *self = next;
        Ok(())
    }

    /// `, orig_queue_id=ID, orig_client=name[addr]`, appended to the
    /// `client=` log line as Postfix does.
    pub fn log_suffix(&self) -> String {
        let mut out = String::new();
        if let Some(ident) = &self.ident {
            out.push_str(&format!(", orig_queue_id={ident}"));
        }
        if let Some(addr) = self.addr {
            let name = self.name.as_deref().unwrap_or("unknown");
            out.push_str(&format!(", orig_client={name}[{addr}]"));
        }
        out
    }
}

/// RFC 3461 xtext decoding; None for a malformed `+HH` or a control byte.
fn xtext_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if (b'!'..=b'~').contains(&b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_as_postfix_and_amavis_send_them() {
        let mut f = Forwarded::default();
        f.apply("NAME=mail.example.com ADDR=192.0.2.7 PORT=4321")
            .unwrap();
        f.apply("PROTO=ESMTP HELO=client+2Eexample IDENT=4ABC123 SOURCE=REMOTE")
            .unwrap();
        assert_eq!(f.name.as_deref(), Some("mail.example.com"));
        assert_eq!(f.addr, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(f.port, Some(4321));
        assert_eq!(f.helo.as_deref(), Some("client.example"));
        assert_eq!(f.ident.as_deref(), Some("4ABC123"));
        assert_eq!(
            f.log_suffix(),
            ", orig_queue_id=4ABC123, orig_client=mail.example.com[192.0.2.7]"
        );
        f.apply("ADDR=IPv6:2001:db8::1 NAME=[UNAVAILABLE]").unwrap();
        assert_eq!(f.addr, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(f.name, None);
    }

    #[test]
    fn bad_commands_change_nothing() {
        let mut f = Forwarded::default();
        f.apply("NAME=a.example").unwrap();
        let before = f.clone();
        for bad in [
            "",
            "NAME",
            "ADDR=999.1.1.1",
            "PORT=70000",
            "NAME=b.example COLOR=blue",
            "NAME=+4",
            "HELO=+0D+0A",
        ] {
            assert!(f.apply(bad).is_err(), "{bad}");
            assert_eq!(f, before, "{bad}");
        }
    }

    #[test]
    fn receive_override_options() {
        let o = ReceiveOverrides::parse(&[
            "no_header_body_checks".into(),
            "no_unknown_recipient_checks".into(),
            "no_milters".into(),
            "no_address_mappings".into(),
        ])
        .unwrap();
        assert!(o.no_header_body_checks && o.no_unknown_recipient_checks);
        assert!(o.no_milters && o.no_address_mappings);
        assert!(ReceiveOverrides::parse(&["no_fun".into()]).is_err());
    }
}
