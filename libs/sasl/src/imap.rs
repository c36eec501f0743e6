//! Checking a password by logging in to an IMAP server (RFC 9051/3501), as
//! saslauthd's rimap does: greeting, STARTTLS when offered (or TLS from the
//! start for imaps:), LOGIN, LOGOUT. The mail server is the one place that
//! knows the passwords, and the gateway keeps none.

use std::sync::Arc;
use std::time::Duration;

use mailgate_config::ClientLevel;
use mailgate_config::ImapTls;
use mailgate_tls::client::{refusal, simple_handshake};
use mailgate_tls::stream::{ClientStream, Stream, take_plain};
use rustls::RootCertStore;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::mechanism::Credentials;
use crate::{BackendError, Verdict};

/// A response line longer than this is a protocol error.
const MAX_LINE: usize = 64 * 1024;

/// The IMAP server and how to reach it.
pub struct Target {
    pub host: String,
    pub port: u16,
    /// imaps: TLS from the first byte.
    pub implicit_tls: bool,
    pub tls: ImapTls,
    /// CAs for `verify` (smtpd_sasl_imap_tls_CAfile).
    pub roots: Arc<RootCertStore>,
}

type Reader = BufReader<ClientStream<TcpStream>>;

/// Logs in as the user; Accepted means the server said OK to LOGIN.
pub async fn check(
    target: &Target,
    credentials: &Credentials,
    timeout: Duration,
) -> Result<Verdict, BackendError> {
    tokio::time::timeout(timeout, converse(target, credentials))
        .await
        .unwrap_or(Err(BackendError::Timeout))
}

async fn converse(target: &Target, credentials: &Credentials) -> Result<Verdict, BackendError> {
    if !credentials.authzid.is_empty() && credentials.authzid != credentials.username {
        // LOGIN has no way to act as another user.
        return Ok(Verdict::Rejected);
    }
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| BackendError::Connect(format!("{}:{}: {e}", target.host, target.port)))?;
    let mut stream: Reader = BufReader::new(Stream::Plain(tcp));
    if target.implicit_tls {
        starttls(&mut stream, target).await?;
    }
    let greeting = read_line(&mut stream).await?;
    if !greeting.starts_with("* OK") {
        return Err(BackendError::Protocol(format!(
            "IMAP greeting: {}",
            printable(&greeting)
        )));
    }
    let mut capabilities = capability_list(&greeting);
    if capabilities.is_none() {
        capabilities = Some(capability(&mut stream, "A1").await?);
    }
    let mut capabilities = capabilities.unwrap_or_default();
    if !stream.get_ref().is_tls() && target.tls > ImapTls::None {
        if capabilities.iter().any(|c| c == "STARTTLS") {
            let reply = command(&mut stream, "A2", "STARTTLS").await?;
            if !reply.starts_with("A2 OK") {
                return Err(BackendError::Tls(format!(
                    "the IMAP server refused STARTTLS: {}",
                    printable(&reply)
                )));
            }
            starttls(&mut stream, target).await?;
            capabilities = capability(&mut stream, "A3").await?;
        } else if target.tls >= ImapTls::Encrypt {
            return Err(BackendError::Tls(
                "TLS is required, but the IMAP server does not offer STARTTLS".into(),
            ));
        }
    }
    if capabilities.iter().any(|c| c == "LOGINDISABLED") {
        return Err(BackendError::Protocol(
            "the IMAP server refuses LOGIN here (LOGINDISABLED): use TLS \
             (smtpd_sasl_imap_tls_security_level)"
                .into(),
        ));
    }
    let (Some(user), Some(password)) = (
        astring(&credentials.username),
        astring(&credentials.password),
    ) else {
        return Ok(Verdict::Rejected);
    };
    let mut login = b"A4 LOGIN ".to_vec();
    login.extend_from_slice(&user);
    login.push(b' ');
    login.extend_from_slice(&password);
    login.extend_from_slice(b"\r\n");
    stream.get_mut().write_all(&login).await?;
    let reply = tagged(&mut stream, "A4").await?;
    let verdict = if reply.starts_with("A4 OK") {
        Verdict::Accepted {
            user: credentials.username.clone(),
        }
    } else if reply.starts_with("A4 NO") {
        Verdict::Rejected
    } else {
        return Err(BackendError::Protocol(format!(
            "LOGIN: {}",
            printable(&reply)
        )));
    };
    let _ = command(&mut stream, "A5", "LOGOUT").await;
    Ok(verdict)
}

/// The TLS handshake, checked as `target.tls` says.
async fn starttls(stream: &mut Reader, target: &Target) -> Result<(), BackendError> {
    let plain = take_plain(stream).ok_or_else(|| BackendError::Tls("already TLS".into()))?;
    let handshake =
        simple_handshake(Arc::clone(&target.roots), &target.host).map_err(BackendError::Tls)?;
    let connector = TlsConnector::from(Arc::clone(&handshake.config));
    let tls = connector
        .connect(handshake.server_name.clone(), plain)
        .await
        .map_err(|e| BackendError::Tls(format!("handshake with {}: {e}", target.host)))?;
    let level = if target.tls == ImapTls::Verify {
        ClientLevel::Verify
    } else {
        ClientLevel::Encrypt
    };
    let findings = handshake
        .findings
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(reason) = refusal(level, &findings) {
        return Err(BackendError::Tls(format!(
            "{reason} ({}): {}",
            target.host,
            findings.problem.unwrap_or_default()
        )));
    }
    *stream = BufReader::new(Stream::Tls(Box::new(tls)));
    Ok(())
}

/// `[CAPABILITY ...]` in a greeting or an untagged CAPABILITY response.
fn capability_list(line: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let start = words.iter().position(|w| {
        w.eq_ignore_ascii_case("[CAPABILITY") || w.eq_ignore_ascii_case("CAPABILITY")
    })?;
    let mut list = Vec::new();
    for word in &words[start + 1..] {
        let name = word.trim_end_matches(']');
        if !name.is_empty() {
            list.push(name.to_ascii_uppercase());
        }
        if word.ends_with(']') {
            break;
        }
    }
    Some(list)
}

async fn capability(stream: &mut Reader, tag: &str) -> Result<Vec<String>, BackendError> {
    stream
        .get_mut()
        .write_all(format!("{tag} CAPABILITY\r\n").as_bytes())
        .await?;
    let mut found = Vec::new();
    loop {
        let line = read_line(stream).await?;
        if line.starts_with("* CAPABILITY") {
            found = capability_list(&line).unwrap_or_default();
        } else if let Some(rest) = line.strip_prefix(tag).filter(|r| r.starts_with(' ')) {
            if !rest.starts_with(" OK") {
                return Err(BackendError::Protocol(format!(
                    "CAPABILITY: {}",
                    printable(&line)
                )));
            }
            return Ok(found);
        }
    }
}

async fn command(stream: &mut Reader, tag: &str, command: &str) -> Result<String, BackendError> {
    stream
        .get_mut()
        .write_all(format!("{tag} {command}\r\n").as_bytes())
        .await?;
    tagged(stream, tag).await
}

/// Reads until the response tagged `tag`; untagged lines are skipped, a
/// BYE is the end.
async fn tagged(stream: &mut Reader, tag: &str) -> Result<String, BackendError> {
    loop {
        let line = read_line(stream).await?;
        if line.starts_with("* BYE") {
            return Err(BackendError::Protocol(format!(
                "the IMAP server hung up: {}",
                printable(&line)
            )));
        }
        if line
            .strip_prefix(tag)
            .is_some_and(|rest| rest.starts_with(' '))
        {
            return Ok(line);
        }
    }
}

/// A string argument, quoted (backslash before `"` and `\`). Text beyond
/// ASCII goes as UTF-8 inside the quotes, which IMAP4rev2 (RFC 9051)
/// allows and Dovecot accepts; a server that refuses it answers BAD, which
/// is reported as a protocol error. None: a value no IMAP server could
/// take (CR, LF or NUL), which cannot be a right password.
fn astring(value: &str) -> Option<Vec<u8>> {
    if value.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
        return None;
    }
    let mut quoted = vec![b'"'];
    for b in value.bytes() {
        if b == b'"' || b == b'\\' {
            quoted.push(b'\\');
        }
        quoted.push(b);
    }
    quoted.push(b'"');
    Some(quoted)
}

async fn read_line(stream: &mut Reader) -> Result<String, BackendError> {
    let mut line = Vec::new();
    let n = (&mut *stream)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(BackendError::Protocol(
            "the IMAP server closed the connection".into(),
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(BackendError::Protocol("response line too long".into()));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn printable(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_from_greeting_and_response() {
        assert_eq!(
            capability_list("* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS LOGINDISABLED] ready"),
            Some(vec![
                "IMAP4REV1".to_string(),
                "SASL-IR".into(),
                "STARTTLS".into(),
                "LOGINDISABLED".into()
            ])
        );
        assert_eq!(
            capability_list("* CAPABILITY IMAP4rev1 AUTH=PLAIN"),
            Some(vec!["IMAP4REV1".to_string(), "AUTH=PLAIN".into()])
        );
        assert_eq!(capability_list("* OK Dovecot ready."), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(astring("bob").unwrap(), b"\"bob\"");
        assert_eq!(astring("a\"b\\c").unwrap(), b"\"a\\\"b\\\\c\"");
        assert_eq!(astring("pässword").unwrap(), "\"pässword\"".as_bytes());
        assert_eq!(astring("a\r\nA9 LOGOUT"), None);
    }
}
