//! Checking a login. The web page asks a password backend through the
//! [`Authenticator`] trait; the one implemented is Dovecot's
//! authentication protocol over its auth socket (what Postfix's
//! `smtpd_sasl_type = dovecot` speaks), at `web_sasl_path` inside the spool
//! (`private/auth`, as Postfix configures it). When the SMTP AUTH backends
//! land, they plug in behind the same trait.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long the backend may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest line accepted from the backend.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The backend could not be asked (down, wrong path, protocol error):
    /// the login fails closed.
    Unavailable(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Unavailable(why) => write!(f, "the login backend is unavailable: {why}"),
        }
    }
}

/// What the web page knows about the connection a login comes from.
#[derive(Clone, Debug)]
pub struct LoginContext {
    pub remote_ip: String,
    /// TLS, or a loopback connection: the password did not cross a network
    /// in clear.
    pub secured: bool,
}

pub type Verdict<'a> = Pin<Box<dyn Future<Output = Result<bool, AuthError>> + Send + 'a>>;

/// A password backend: Ok(true) for a good login, Ok(false) for a bad one,
/// Err when it cannot tell (which the page treats as a refusal).
pub trait Authenticator: Send + Sync {
    fn check<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
        context: &'a LoginContext,
    ) -> Verdict<'a>;
}

/// Dovecot's auth-client protocol, mechanism PLAIN.
pub struct DovecotAuth {
    /// The socket, relative to the spool the web service runs in.
    pub socket: PathBuf,
}

impl Authenticator for DovecotAuth {
    fn check<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
        context: &'a LoginContext,
    ) -> Verdict<'a> {
        Box::pin(async move {
            match tokio::time::timeout(TIMEOUT, self.ask(user, password, context)).await {
                Ok(result) => result,
                Err(_) => Err(AuthError::Unavailable("no answer within 10 seconds".into())),
            }
        })
    }
}

impl DovecotAuth {
    async fn ask(
        &self,
        user: &str,
        password: &str,
        context: &LoginContext,
    ) -> Result<bool, AuthError> {
        let unavailable = |what: &str, e: std::io::Error| {
            AuthError::Unavailable(format!("{} {what}: {e}", self.socket.display()))
        };
        // Fields are tab-separated: a login with a tab, newline or NUL can
        // not be expressed, and is simply wrong.
        if user.is_empty()
            || [user, password]
                .iter()
                .any(|f| f.contains(['\t', '\n', '\r', '\0']))
        {
            return Ok(false);
        }
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| unavailable("connect", e))?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        let hello = format!("VERSION\t1\t2\nCPID\t{}\n", std::process::id());
        write
            .write_all(hello.as_bytes())
            .await
            .map_err(|e| unavailable("write", e))?;
        let mut plain_offered = false;
        loop {
            let line = read_line(&mut lines).await?;
            let mut fields = line.split('\t');
            match fields.next() {
                Some("VERSION") if fields.next() != Some("1") => {
                    return Err(AuthError::Unavailable(format!(
                        "unsupported protocol version: {line}"
                    )));
                }
                Some("MECH") => plain_offered |= fields.next() == Some("PLAIN"),
                Some("DONE") => break,
                _ => {}
            }
        }
        if !plain_offered {
            return Err(AuthError::Unavailable(
                "the PLAIN mechanism is not offered".into(),
            ));
        }
        let response = base64(format!("\0{user}\0{password}").as_bytes());
        let mut request = "AUTH\t1\tPLAIN\tservice=mailgate-web\tno-penalty".to_string();
        if !context.remote_ip.is_empty() && !context.remote_ip.contains(['\t', '\n']) {
            request.push_str(&format!("\trip={}", context.remote_ip));
        }
        if context.secured {
            request.push_str("\tsecured");
        }
        request.push_str(&format!("\tresp={response}\n"));
        write
            .write_all(request.as_bytes())
            .await
            .map_err(|e| unavailable("write", e))?;
        loop {
            let line = read_line(&mut lines).await?;
            let mut fields = line.split('\t');
            let verb = fields.next();
            if fields.next() != Some("1") {
                continue;
            }
            return match verb {
                Some("OK") => Ok(true),
                Some("FAIL") => Ok(false),
                // PLAIN with an initial response needs no second round.
                Some("CONT") => Ok(false),
                _ => Err(AuthError::Unavailable(format!("unexpected answer: {line}"))),
            };
        }
    }
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<String, AuthError> {
    let mut line = Vec::new();
    let mut limited = reader.take(MAX_LINE as u64);
    let n = limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| AuthError::Unavailable(e.to_string()))?;
    if n == 0 || !line.ends_with(b"\n") {
        return Err(AuthError::Unavailable(
            "the connection ended in the middle of the dialogue".into(),
        ));
    }
    line.pop();
    Ok(String::from_utf8_lossy(&line).into_owned())
}

use tokio::io::AsyncReadExt as _;

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_encodes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"\0u\0p"), "AHUAcA==");
    }

    /// A stand-in Dovecot that accepts one user: enough to test the
    /// dialogue; the end-to-end test runs the real Dovecot.
    async fn fake_dovecot(socket: PathBuf) {
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write
                    .write_all(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\tx\nDONE\n")
                    .await
                    .unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.starts_with("AUTH\t1\tPLAIN\t") {
                        let good = line.contains(&format!("resp={}", base64(b"\0ann\0secret")));
                        let verb = if good { "OK\t1\tuser=ann" } else { "FAIL\t1" };
                        write
                            .write_all(format!("{verb}\n").as_bytes())
                            .await
                            .unwrap();
                    }
                }
            });
        }
    }

    #[tokio::test]
    async fn the_dovecot_dialogue() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("auth");
        let context = LoginContext {
            remote_ip: "127.0.0.1".into(),
            secured: true,
        };
        let auth = DovecotAuth {
            socket: socket.clone(),
        };
        assert!(matches!(
            auth.check("ann", "secret", &context).await,
            Err(AuthError::Unavailable(_))
        ));
        tokio::spawn(fake_dovecot(socket));
        for _ in 0..100 {
            if auth.check("ann", "secret", &context).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(auth.check("ann", "secret", &context).await, Ok(true));
        assert_eq!(auth.check("ann", "wrong", &context).await, Ok(false));
        assert_eq!(
            auth.check("ann\tresp=x", "secret", &context).await,
            Ok(false)
        );
    }
}
