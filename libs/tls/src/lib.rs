//! TLS for mailgate's services, with rustls: certificate and key files,
//! the protocol of tlskeys (the process that holds the private keys) and
//! the signing key that works through it, and the log and Received texts
//! in Postfix's format.

pub mod client;
pub mod fingerprint;
pub mod pem;
pub mod protocol;
pub mod remote;
pub mod server;
pub mod stream;
pub mod summary;
