//! The AUTH command (RFC 4954) with PLAIN and LOGIN, checked against the
//! internal mail system: Dovecot's auth service (smtpd_sasl_type =
//! dovecot) or a login to the IMAP server (smtpd_sasl_type = imap, as
//! saslauthd's rimap). Replies and log lines as Postfix's smtpd.
//!
//! smtpd talks to the backend itself, as Postfix does: its sandbox already
//! has TCP (for DNS) and Unix sockets, and it sees the password in the
//! AUTH exchange anyway (SECURITY.md, "SMTP AUTH").

use std::sync::Arc;
use std::time::Duration;

use mailgate_config::{ImapTls, MainConfig, NetworkList, SaslBackend, mechanisms_allowed};
use mailgate_log::warning;
use mailgate_sasl::mechanism::{self, DecodeError, LOGIN_PASSWORD, LOGIN_USERNAME};
use mailgate_sasl::{BackendError, Credentials, Verdict, dovecot, imap};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::conn::Line;
use crate::reply::Reply;
use crate::session::{End, Session, io_end};

/// Where passwords are checked.
pub enum Backend {
    Dovecot(mailgate_config::Endpoint),
    Imap(imap::Target),
}

/// smtpd_sasl_* as smtpd uses them.
pub struct Sasl {
    pub backend: Backend,
    /// smtpd_sasl_service (Dovecot's service name).
    pub service: String,
    /// PLAIN and LOGIN allowed by smtpd_sasl_security_options (plain
    /// text) and by smtpd_sasl_tls_security_options (over TLS).
    pub allowed_plain: bool,
    pub allowed_tls: bool,
    pub authenticated_header: bool,
    pub broken_clients: bool,
    /// smtpd_sasl_exceptions_networks: AUTH not announced to these.
    pub exceptions: NetworkList,
    pub failure_delay: Duration,
    pub timeout: Duration,
    pub rate_limit: u32,
}

impl Sasl {
    /// None when smtpd_sasl_auth_enable = no.
    pub fn load(config: &MainConfig) -> Result<Option<Arc<Sasl>>, String> {
        let Some(backend) = SaslBackend::from_config(config).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let backend = match backend {
            SaslBackend::Dovecot(endpoint) => Backend::Dovecot(endpoint),
            SaslBackend::Imap {
                host,
                port,
                implicit_tls,
            } => {
                let tls = ImapTls::from_config(config).map_err(|e| e.to_string())?;
                let ca = config.get("smtpd_sasl_imap_tls_CAfile");
                let mut roots = rustls::RootCertStore::empty();
                if !ca.trim().is_empty() {
                    let certs =
                        mailgate_tls::pem::certificates(&config.config_dir().join(ca.trim()))
                            .map_err(|e| format!("smtpd_sasl_imap_tls_CAfile: {e}"))?;
                    roots.add_parsable_certificates(certs);
                } else if tls == ImapTls::Verify {
                    return Err(
                        "smtpd_sasl_imap_tls_security_level = verify needs smtpd_sasl_imap_tls_CAfile"
                            .into(),
                    );
                }
                Backend::Imap(imap::Target {
                    host,
                    port,
                    implicit_tls,
                    tls,
                    roots: Arc::new(roots),
                })
            }
        };
        let options = |name: &'static str| {
            mechanisms_allowed(name, &config.list(name)).map_err(|e| e.to_string())
        };
        let rate = config.int("smtpd_client_auth_rate_limit");
        Ok(Some(Arc::new(Sasl {
            backend,
            service: config.get("smtpd_sasl_service"),
            allowed_plain: options("smtpd_sasl_security_options")?,
            allowed_tls: options("smtpd_sasl_tls_security_options")?,
            authenticated_header: config.bool("smtpd_sasl_authenticated_header"),
            broken_clients: config.bool("broken_sasl_auth_clients"),
            exceptions: NetworkList::parse(
                &config.list("smtpd_sasl_exceptions_networks"),
                config.config_dir(),
            )
            .map_err(|e| format!("smtpd_sasl_exceptions_networks: {e}"))?,
            failure_delay: config.time("smtpd_sasl_failure_delay"),
            timeout: config.time("smtpd_sasl_timeout"),
            rate_limit: u32::try_from(rate.max(0)).unwrap_or(u32::MAX),
        })))
    }
}

/// How a client's response to a challenge ended.
enum Response {
    Data(Vec<u8>),
    Reply(Reply),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    /// Whether AUTH may be used now: enabled, a mechanism left by the
    /// security options of this session (plain or TLS), and TLS when
    /// smtpd_tls_auth_only says so.
    pub(crate) fn auth_usable(&self) -> bool {
        let Some(sasl) = &self.settings.sasl else {
            return false;
        };
        let tls = self.conn.stream.is_tls();
        let auth_only = self.settings.tls.as_ref().is_some_and(|t| t.auth_only);
        if auth_only && !tls {
            return false;
        }
        if tls {
            sasl.allowed_tls
        } else {
            sasl.allowed_plain
        }
    }

    /// The EHLO lines for AUTH, when it is announced to this client.
    pub(crate) fn auth_ehlo_lines(&self) -> Vec<String> {
        let Some(sasl) = &self.settings.sasl else {
            return Vec::new();
        };
        if !self.auth_usable() || sasl.exceptions.contains(self.st.peer.addr) {
            return Vec::new();
        }
        let mut lines = vec!["AUTH PLAIN LOGIN".to_string()];
        if sasl.broken_clients {
            lines.push("AUTH=PLAIN LOGIN".to_string());
        }
        lines
    }

    /// AUTH mechanism [initial-response]. Err: the connection is gone.
    pub(crate) async fn auth(&mut self, arg: &str) -> Result<Reply, End> {
        let s = self.settings;
        if s.helo_required && self.st.helo.is_none() {
            return Ok(Reply::new(503, "5.5.1 Error: send HELO/EHLO first"));
        }
        let Some(sasl) = s.sasl.clone() else {
            return Ok(Reply::new(503, "5.5.1 Error: authentication not enabled"));
        };
        let tls = self.conn.stream.is_tls();
        if self.txn.is_some() {
            return Ok(Reply::new(503, "5.5.1 Error: MAIL transaction in progress"));
        }
        if s.tls.as_ref().is_some_and(|t| t.auth_only) && !tls {
            // RFC 4954, section 4.
            return Ok(Reply::new(
                504,
                "5.5.4 Encryption required for requested authentication mechanism",
            ));
        }
        if !self.auth_usable() {
            return Ok(Reply::new(503, "5.5.1 Error: authentication not enabled"));
        }
        if self.st.sasl_username.is_some() {
            return Ok(Reply::new(503, "5.5.1 Error: already authenticated"));
        }
        let words: Vec<&str> = arg.split(' ').filter(|w| !w.is_empty()).collect();
        if words.is_empty() || words.len() > 2 {
            return Ok(Reply::new(501, "5.5.4 Syntax: AUTH mechanism"));
        }
        let addr = self.st.peer.addr;
        if sasl.rate_limit > 0 && !s.limits.exceptions.contains(addr) {
            let rate = self.shared.anvil.auth(addr).await;
            if rate > sasl.rate_limit {
                warning!(
                    "AUTH command rate limit exceeded: {rate} from {} for service {}",
                    self.st.peer.label(),
                    self.shared.service
                );
                return Ok(Reply::new(
                    450,
                    format!("4.7.1 Error: too many AUTH commands from {addr}"),
                ));
            }
        }
        let method = words[0].to_ascii_uppercase();
        let initial = words.get(1).copied();
        let credentials = match method.as_str() {
            "PLAIN" => {
                let message = match initial {
                    Some(text) => mechanism::decode(text).map_err(|e| (e, "initial")),
                    None => match self.challenge("").await? {
                        Response::Data(data) => Ok(data),
                        Response::Reply(reply) => return Ok(reply),
                    },
                };
                message.and_then(|m| mechanism::plain(&m).map_err(|e| (e, "initial")))
            }
            "LOGIN" => {
                let username = match initial {
                    Some(text) => mechanism::decode(text).map_err(|e| (e, "initial")),
                    None => match self.challenge(LOGIN_USERNAME).await? {
                        Response::Data(data) => Ok(data),
                        Response::Reply(reply) => return Ok(reply),
                    },
                };
                match username {
                    Err(e) => Err(e),
                    Ok(username) => match self.challenge(LOGIN_PASSWORD).await? {
                        Response::Data(password) => {
                            mechanism::login(&username, &password).map_err(|e| (e, "continued"))
                        }
                        Response::Reply(reply) => return Ok(reply),
                    },
                }
            }
            _ => {
                return Ok(self.failed(
                    &method,
                    &format!("Invalid authentication mechanism: '{}'", words[0]),
                    None,
                ));
            }
        };
        let credentials = match credentials {
            Ok(c) => c,
            Err((DecodeError::Base64, which)) => {
                return Ok(self.failed(
                    &method,
                    &format!("Invalid base64 data in {which} response"),
                    None,
                ));
            }
            Err((DecodeError::Malformed, _)) => {
                return Ok(self.failed(&method, "Invalid authentication data", None));
            }
        };
        match self.check(&sasl, &credentials, tls).await {
            Ok(Verdict::Accepted { user }) => {
                self.st.sasl_username = Some(printable(&user));
                self.st.sasl_method = Some(method);
                Ok(Reply::new(235, "2.7.0 Authentication successful"))
            }
            Ok(Verdict::Rejected) => {
                // Slows down password guessing: every failure waits.
                tokio::time::sleep(sasl.failure_delay).await;
                Ok(self.failed(
                    &method,
                    "authentication failure",
                    Some(&credentials.username),
                ))
            }
            Err(e) => {
                warning!(
                    "{}: SASL {method} authentication failed: {e}, sasl_username={}",
                    self.st.peer.label(),
                    printable(&credentials.username)
                );
                Ok(Reply::new(
                    454,
                    "4.7.0 Temporary authentication failure: the authentication backend is \
                     unavailable",
                ))
            }
        }
    }

    async fn check(
        &self,
        sasl: &Sasl,
        credentials: &Credentials,
        tls: bool,
    ) -> Result<Verdict, BackendError> {
        match &sasl.backend {
            Backend::Dovecot(endpoint) => {
                let client_addr = self.st.peer.addr.to_string();
                let context = dovecot::Context {
                    service: &sasl.service,
                    client_addr: &client_addr,
                    local_addr: None,
                    secured: tls,
                };
                dovecot::check(endpoint, credentials, &context, sasl.timeout).await
            }
            Backend::Imap(target) => imap::check(target, credentials, sasl.timeout).await,
        }
    }

    /// 535, and Postfix's warning.
    fn failed(&self, method: &str, reason: &str, username: Option<&str>) -> Reply {
        warning!(
            "{}: SASL {} authentication failed: {reason}, sasl_username={}",
            self.st.peer.label(),
            printable(method),
            username
                .map(printable)
                .as_deref()
                .unwrap_or("(unavailable)")
        );
        Reply::new(535, format!("5.7.8 Error: authentication failed: {reason}"))
    }

    /// Sends `334 challenge` and reads the client's answer: its decoded
    /// bytes, or the reply that ends the exchange ("*" cancels it).
    async fn challenge(&mut self, challenge: &str) -> Result<Response, End> {
        let text = if challenge.is_empty() {
            "334 \r\n".to_string()
        } else {
            format!("334 {challenge}\r\n")
        };
        self.conn.queue_raw(text.as_bytes());
        let shared = self.shared;
        let line = self
            .conn
            .read_line(
                self.settings.line_length_limit,
                &|| shared.timing(),
                &mut self.wake,
            )
            .await
            .map_err(io_end)?;
        let line = match line {
            Line::Text(line) => line,
            Line::TooLong => {
                return Ok(Response::Reply(Reply::new(
                    500,
                    "5.5.6 SASL response limit exceeded",
                )));
            }
        };
        let text = String::from_utf8_lossy(&line);
        if text.trim() == "*" {
            warning!("{}: SASL authentication aborted", self.st.peer.label());
            return Ok(Response::Reply(Reply::new(
                501,
                "5.7.0 Authentication aborted",
            )));
        }
        match mechanism::decode(&text) {
            Ok(data) => Ok(Response::Data(data)),
            Err(_) => Ok(Response::Reply(self.failed(
                "",
                "Invalid base64 data in continued response",
                None,
            ))),
        }
    }
}

/// Text fit for a log line: control characters become `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
