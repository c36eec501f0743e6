//! The SMTP AUTH parameters: which password backend (smtpd_sasl_type and
//! smtpd_sasl_path) and which mechanisms the security options leave.
//! Parsed here so that `mailgate check`, smtpd and mailgate check agree.

use std::fmt;
use std::path::PathBuf;

use crate::endpoint::Endpoint;
use crate::main_cf::MainConfig;

/// Where passwords are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslBackend {
    /// Dovecot's auth service (its client protocol), over a Unix socket
    /// (a path relative to the spool, as Postfix's `private/auth`) or TCP.
    Dovecot(Endpoint),
    /// A login to an IMAP server (as saslauthd's rimap): `imap:host:port`
    /// with STARTTLS when offered, `imaps:host:port` with TLS from the start.
    Imap {
        host: String,
        port: u16,
        implicit_tls: bool,
    },
}

impl SaslBackend {
    /// Whether reaching the backend needs TCP.
    pub fn needs_inet(&self) -> bool {
        !matches!(self, SaslBackend::Dovecot(Endpoint::Unix(_)))
    }
}

/// How smtpd talks TLS to an imap: backend
/// (smtpd_sasl_imap_tls_security_level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImapTls {
    /// Never (saslauthd's rimap: passwords in clear on the internal network).
    None,
    /// STARTTLS when the server offers it; any certificate.
    May,
    /// TLS required; any certificate.
    Encrypt,
    /// TLS required; a certificate from smtpd_sasl_imap_tls_CAfile for the host.
    Verify,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslConfigError {
    pub parameter: &'static str,
    pub message: String,
}

impl fmt::Display for SaslConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.parameter, self.message)
    }
}

impl std::error::Error for SaslConfigError {}

fn error(parameter: &'static str, message: impl Into<String>) -> SaslConfigError {
    SaslConfigError {
        parameter,
        message: message.into(),
    }
}

fn host_port(parameter: &'static str, text: &str) -> Result<(String, u16), SaslConfigError> {
    let bad = || {
        error(
            parameter,
            format!("\"{text}\" is not host:port ([address]:port for IPv6)"),
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    if host.is_empty() || host.contains([' ', '/']) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

impl SaslBackend {
    /// The backend when smtpd_sasl_auth_enable = yes; None when AUTH is off.
    pub fn from_config(config: &MainConfig) -> Result<Option<SaslBackend>, SaslConfigError> {
        if !config.bool("smtpd_sasl_auth_enable") {
            return Ok(None);
        }
        let kind = config.get("smtpd_sasl_type").trim().to_ascii_lowercase();
        let path = config.get("smtpd_sasl_path").trim().to_string();
        match kind.as_str() {
            "dovecot" => {
                let endpoint = if let Some(rest) = path.strip_prefix("inet:") {
                    let (host, port) = host_port("smtpd_sasl_path", rest)?;
                    Endpoint::Inet { host, port }
                } else {
                    let path = path.strip_prefix("unix:").unwrap_or(&path);
                    if path.is_empty() {
                        return Err(error("smtpd_sasl_path", "empty"));
                    }
                    Endpoint::Unix(PathBuf::from(path))
                };
                Ok(Some(SaslBackend::Dovecot(endpoint)))
            }
            "imap" => {
                let (rest, implicit_tls) = if let Some(rest) = path.strip_prefix("imaps:") {
                    (rest, true)
                } else if let Some(rest) = path.strip_prefix("imap:") {
                    (rest, false)
                } else {
                    return Err(error(
                        "smtpd_sasl_path",
                        format!(
                            "\"{path}\": with smtpd_sasl_type = imap, expected imap:host:port or imaps:host:port"
                        ),
                    ));
                };
                let (host, port) = host_port("smtpd_sasl_path", rest)?;
                Ok(Some(SaslBackend::Imap {
                    host,
                    port,
                    implicit_tls,
                }))
            }
            "cyrus" => Err(error(
                "smtpd_sasl_type",
                "cyrus is not implemented by mailgate; use dovecot (Dovecot's auth service) \
                 or imap (a login to the mail server, as saslauthd's rimap)",
            )),
            other => Err(error(
                "smtpd_sasl_type",
                format!("\"{other}\": expected dovecot or imap"),
            )),
        }
    }
}

impl ImapTls {
    pub fn from_config(config: &MainConfig) -> Result<ImapTls, SaslConfigError> {
        let value = config.get("smtpd_sasl_imap_tls_security_level");
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(ImapTls::None),
            "may" => Ok(ImapTls::May),
            "encrypt" => Ok(ImapTls::Encrypt),
            "verify" => Ok(ImapTls::Verify),
            _ => Err(error(
                "smtpd_sasl_imap_tls_security_level",
                format!("\"{value}\": expected none, may, encrypt or verify"),
            )),
        }
    }
}

/// Which of PLAIN and LOGIN (mailgate's mechanisms, both plaintext) the
/// security options leave. Postfix passes the options to the SASL library,
/// which drops every mechanism that does not meet them: `noplaintext`,
/// `nodictionary`, `noactive`, `mutual_auth` and `forward_secrecy` leave
/// none, so AUTH is not offered at all.
pub fn mechanisms_allowed(
    parameter: &'static str,
    options: &[String],
) -> Result<bool, SaslConfigError> {
    let mut allowed = true;
    for option in options {
        match option.to_ascii_lowercase().as_str() {
            "noanonymous" => {}
            "noplaintext" | "nodictionary" | "noactive" | "mutual_auth" | "forward_secrecy" => {
                allowed = false;
            }
            other => {
                return Err(error(
                    parameter,
                    format!(
                        "unknown option \"{other}\" (expected noanonymous, noplaintext, \
                         nodictionary, noactive, mutual_auth or forward_secrecy)"
                    ),
                ));
            }
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> MainConfig {
        MainConfig::parse(
            text,
            Path::new("/etc/mg/main.cf"),
            Path::new("/etc/mg"),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn backends() {
        assert_eq!(SaslBackend::from_config(&config("")).unwrap(), None);
        let on = "smtpd_sasl_auth_enable = yes\n";
        assert!(SaslBackend::from_config(&config(on)).is_err());
        assert_eq!(
            SaslBackend::from_config(&config(&format!(
                "{on}smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n"
            )))
            .unwrap(),
            Some(SaslBackend::Dovecot(Endpoint::Unix("private/auth".into())))
        );
        let inet = SaslBackend::from_config(&config(&format!(
            "{on}smtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:127.0.0.1:12345\n"
        )))
        .unwrap()
        .unwrap();
        assert!(inet.needs_inet());
        assert_eq!(
            SaslBackend::from_config(&config(&format!(
                "{on}smtpd_sasl_type = imap\nsmtpd_sasl_path = imaps:[::1]:993\n"
            )))
            .unwrap(),
            Some(SaslBackend::Imap {
                host: "::1".into(),
                port: 993,
                implicit_tls: true
            })
        );
        for bad in ["imap:mail", "imap:mail:0", "pop3:mail:110", "imap::143"] {
            assert!(
                SaslBackend::from_config(&config(&format!(
                    "{on}smtpd_sasl_type = imap\nsmtpd_sasl_path = {bad}\n"
                )))
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn security_options() {
        let opts = |s: &str| {
            s.split(',')
                .map(|o| o.trim().to_string())
                .collect::<Vec<_>>()
        };
        assert!(mechanisms_allowed("x", &opts("noanonymous")).unwrap());
        assert!(!mechanisms_allowed("x", &opts("noanonymous, noplaintext")).unwrap());
        assert!(mechanisms_allowed("x", &opts("noanonymous, nosuch")).is_err());
        assert_eq!(ImapTls::from_config(&config("")).unwrap(), ImapTls::May);
    }
}
