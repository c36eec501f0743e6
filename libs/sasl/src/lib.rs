//! SMTP AUTH for mailgate: the PLAIN and LOGIN mechanisms (decoding what
//! the client sends) and the two password backends smtpd uses: Dovecot's
//! auth service (its client protocol) and a login to an IMAP server (as
//! saslauthd's rimap).

pub mod dovecot;
pub mod imap;
pub mod mechanism;

pub use mechanism::Credentials;

use std::fmt;

/// What a backend said about a username and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right; the name the backend knows the user by.
    Accepted { user: String },
    /// Wrong username or password (or a disabled account).
    Rejected,
}

/// Why a backend could not give a verdict: the client gets a 4xx.
#[derive(Debug)]
pub enum BackendError {
    Connect(String),
    Protocol(String),
    Tls(String),
    Timeout,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Connect(e) => write!(f, "cannot connect: {e}"),
            BackendError::Protocol(e) => write!(f, "protocol error: {e}"),
            BackendError::Tls(e) => write!(f, "TLS: {e}"),
            BackendError::Timeout => write!(f, "timed out"),
        }
    }
}

impl std::error::Error for BackendError {}

impl From<std::io::Error> for BackendError {
    fn from(e: std::io::Error) -> Self {
        BackendError::Protocol(e.to_string())
    }
}
