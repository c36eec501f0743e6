//! smtpd -> sasl: one request per AUTH attempt, on a connection to the
//! sasl service's socket (`private/sasl`).

use serde::{Deserialize, Serialize};

/// The sasl service's socket, relative to the spool.
pub const SERVICE: &str = "sasl";

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// "PLAIN" or "LOGIN", for the backend and the log.
    pub mechanism: String,
    pub authzid: String,
    pub username: String,
    pub password: String,
    /// The SMTP client's address (rate limits, Dovecot's rip).
    pub client_addr: String,
    /// The address the client connected to (Dovecot's lip).
    pub local_addr: String,
    /// Whether the SMTP session is protected by TLS (Dovecot's "secured").
    pub secured: bool,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// 235: the user as the backend names them.
    Accepted { user: String },
    /// 535: wrong username or password.
    Rejected,
    /// 454: the backend could not be asked.
    Unavailable { reason: String },
    /// 421/450: smtpd_client_auth_rate_limit exceeded for this client.
    RateLimited { limit: u32 },
}
