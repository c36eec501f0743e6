//! Dovecot's authentication client protocol (version 1.2), as Postfix's
//! xsasl_dovecot_server speaks it: the handshake (VERSION, CPID; the
//! server's VERSION, MECH, SPID, CUID, COOKIE, DONE), then one AUTH with
//! PLAIN and the initial response, answered OK or FAIL.
//!
//! <https://doc.dovecot.org/developer_manual/design/auth_protocol/>

use std::time::Duration;

use mailgate_config::Endpoint;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

use crate::mechanism::{Credentials, encode};
use crate::{BackendError, Verdict};

/// A line from Dovecot longer than this is a protocol error.
const MAX_LINE: usize = 16 * 1024;

/// Where the request comes from, for Dovecot's log and policies.
pub struct Context<'a> {
    /// smtpd_sasl_service: Dovecot's "service" (its `%s`).
    pub service: &'a str,
    pub client_addr: &'a str,
    /// The address the client connected to, when known.
    pub local_addr: Option<&'a str>,
    /// The SMTP session is protected by TLS: Dovecot's "secured" (with
    /// disable_plaintext_auth = yes Dovecot refuses PLAIN without it).
    pub secured: bool,
}

/// Checks a username and password with Dovecot's auth service.
pub async fn check(
    endpoint: &Endpoint,
    credentials: &Credentials,
    context: &Context<'_>,
    timeout: Duration,
) -> Result<Verdict, BackendError> {
    let run = async {
        match endpoint {
            Endpoint::Unix(path) => {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(|e| BackendError::Connect(format!("{}: {e}", path.display())))?;
                converse(stream, credentials, context).await
            }
            Endpoint::Inet { host, port } => {
                let stream = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| BackendError::Connect(format!("{host}:{port}: {e}")))?;
                converse(stream, credentials, context).await
            }
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(BackendError::Timeout))
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    credentials: &Credentials,
    context: &Context<'_>,
) -> Result<Verdict, BackendError> {
    let mut stream = BufReader::new(stream);
    let hello = format!("VERSION\t1\t2\nCPID\t{}\n", std::process::id());
    stream.get_mut().write_all(hello.as_bytes()).await?;
    let mut plain = false;
    loop {
        let line = read_line(&mut stream).await?;
        let fields: Vec<&str> = line.split('\t').collect();
        match fields[0] {
            "VERSION" if fields.get(1) != Some(&"1") => {
                return Err(BackendError::Protocol(format!(
                    "Dovecot auth protocol version {} (expected 1)",
                    fields.get(1).unwrap_or(&"?")
                )));
            }
            "MECH"
                if fields
                    .get(1)
                    .is_some_and(|m| m.eq_ignore_ascii_case("PLAIN")) =>
            {
                plain = true;
            }
            "DONE" => break,
            _ => {}
        }
    }
    if !plain {
        return Err(BackendError::Protocol(
            "Dovecot's auth service offers no PLAIN mechanism (auth_mechanisms)".into(),
        ));
    }
    let mut message = Vec::new();
    message.extend_from_slice(credentials.authzid.as_bytes());
    message.push(0);
    message.extend_from_slice(credentials.username.as_bytes());
    message.push(0);
    message.extend_from_slice(credentials.password.as_bytes());
    let mut auth = format!(
        "AUTH\t1\tPLAIN\tservice={}\tnologin",
        escape(context.service)
    );
    if let Some(lip) = context.local_addr {
        auth.push_str(&format!("\tlip={}", escape(lip)));
    }
    auth.push_str(&format!("\trip={}", escape(context.client_addr)));
    if context.secured {
        auth.push_str("\tsecured");
    }
    auth.push_str(&format!("\tresp={}\n", encode(&message)));
    stream.get_mut().write_all(auth.as_bytes()).await?;
    loop {
        let line = read_line(&mut stream).await?;
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.get(1) != Some(&"1") {
            continue;
        }
        let param = |name: &str| {
            fields[2..]
                .iter()
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .map(unescape)
        };
        return match fields[0] {
            "OK" => Ok(Verdict::Accepted {
                user: param("user").unwrap_or_else(|| credentials.username.clone()),
            }),
            // "temp": Dovecot could not check (its passdb is down).
            "FAIL" if fields[2..].contains(&"temp") => Err(BackendError::Protocol(format!(
                "Dovecot: temporary failure{}",
                param("reason")
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ))),
            "FAIL" => Ok(Verdict::Rejected),
            "CONT" => Err(BackendError::Protocol(
                "Dovecot asked for more than PLAIN's one message".into(),
            )),
            other => Err(BackendError::Protocol(format!(
                "unexpected reply \"{other}\" from Dovecot"
            ))),
        };
    }
}

async fn read_line<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
) -> Result<String, BackendError> {
    let mut line = Vec::new();
    let n = (&mut *stream)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(BackendError::Protocol(
            "Dovecot closed the connection".into(),
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(BackendError::Protocol("line too long from Dovecot".into()));
    }
    line.pop();
    String::from_utf8(line)
        .map_err(|_| BackendError::Protocol("non-UTF-8 line from Dovecot".into()))
}

/// Dovecot's tab escaping: \001 -> \0011, \t -> \001t, \n -> \001n.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\u{1}' => out.push_str("\u{1}1"),
            '\t' => out.push_str("\u{1}t"),
            '\n' => out.push_str("\u{1}n"),
            '\r' => out.push_str("\u{1}r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('1') => out.push('\u{1}'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_escaping_round_trips() {
        let text = "a\tb\nc\u{1}d\re";
        assert_eq!(escape(text), "a\u{1}tb\u{1}nc\u{1}1d\u{1}re");
        assert_eq!(unescape(&escape(text)), text);
    }

    /// The protocol as a scripted Dovecot answers it (the real Dovecot is
    /// in tests/dovecot.rs).
    #[tokio::test]
    async fn handshake_and_verdicts() {
        for (reply, expected) in [
            (
                "OK\t1\tuser=bob@example.com\n",
                Ok(Verdict::Accepted {
                    user: "bob@example.com".into(),
                }),
            ),
            ("FAIL\t1\tuser=bob\n", Ok(Verdict::Rejected)),
            ("FAIL\t1\ttemp\treason=db down\n", Err(())),
        ] {
            let (client, mut server) = tokio::io::duplex(4096);
            let script = tokio::spawn(async move {
                server
                    .write_all(
                        b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t1\nCUID\t2\nCOOKIE\tab\nDONE\n",
                    )
                    .await
                    .unwrap();
                let mut reader = BufReader::new(server);
                let mut seen = String::new();
                while !seen.contains("AUTH") {
                    let mut line = String::new();
                    reader.read_line(&mut line).await.unwrap();
                    seen.push_str(&line);
                }
                reader.get_mut().write_all(reply.as_bytes()).await.unwrap();
                seen
            });
            let credentials = Credentials {
                authzid: String::new(),
                username: "bob".into(),
                password: "secret".into(),
            };
            let context = Context {
                service: "smtp",
                client_addr: "192.0.2.1",
                local_addr: Some("127.0.0.1"),
                secured: true,
            };
            let verdict = converse(client, &credentials, &context).await;
            match expected {
                Ok(v) => assert_eq!(verdict.unwrap(), v),
                Err(()) => assert!(verdict.is_err()),
            }
            let seen = script.await.unwrap();
            assert!(seen.starts_with("VERSION\t1\t2\nCPID\t"));
            assert!(seen.contains(
                "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.1\tsecured\tresp=AGJvYgBzZWNyZXQ=\n"
            ));
        }
    }
}
