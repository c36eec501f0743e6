//! Checking a login. The web page asks a password backend through the
//! [`Authenticator`] trait; the one used is Dovecot's authentication
//! service (libs/sasl, the client smtpd's AUTH uses too) over its auth
//! socket at `web_sasl_path` inside the spool (`private/auth`, as Postfix
//! configures it).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use mailgate_config::Endpoint;
use mailgate_sasl::{Credentials, Verdict as SaslVerdict, dovecot};

/// How long the backend may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

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

/// Dovecot's auth service, mechanism PLAIN.
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
            // Dovecot's fields are tab-separated: a login with a tab,
            // newline or NUL cannot be expressed, and is simply wrong.
            if user.is_empty()
                || [user, password]
                    .iter()
                    .any(|f| f.contains(['\t', '\n', '\r', '\0']))
            {
                return Ok(false);
            }
            let credentials = Credentials {
                authzid: String::new(),
                username: user.to_string(),
                password: password.to_string(),
            };
            let sasl = dovecot::Context {
                service: "mailgate-web",
                client_addr: &context.remote_ip,
                local_addr: None,
                secured: context.secured,
            };
            let endpoint = Endpoint::Unix(self.socket.clone());
            match dovecot::check(&endpoint, &credentials, &sasl, TIMEOUT).await {
                Ok(SaslVerdict::Accepted { .. }) => Ok(true),
                Ok(SaslVerdict::Rejected) => Ok(false),
                Err(e) => Err(AuthError::Unavailable(format!(
                    "{}: {e}",
                    self.socket.display()
                ))),
            }
        })
    }
}
