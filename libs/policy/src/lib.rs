//! Postfix's policy delegation protocol (SMTPD_POLICY_README), both sides.
//!
//! A request is a block of `name=value` lines ended by an empty line; the
//! answer is one `action=...` line and an empty line. The client
//! ([`PolicyClient`]) is what `check_policy_service` uses; the server
//! helpers ([`read_request`], [`write_action`]) are what a policy service
//! such as mailgate's greylist uses. Reading is bounded on both sides
//! ([`Limits`]) and anything malformed is an error, never a guess.
//!
//! ```no_run
//! # async fn example() -> Result<(), mailgate_policy::PolicyError> {
//! use mailgate_policy::{Endpoint, PolicyClient, PolicySettings, Request, state};
//! // Before the sandbox:
//! let client = PolicyClient::new(Endpoint::parse("unix:private/greylist")?, PolicySettings::default())?;
//! // In a session:
//! let request = Request { client_address: "192.0.2.1".into(), ..Request::smtpd(state::RCPT) };
//! let action = client.query_or_default(&request).await;
//! # let _ = action; Ok(()) }
//! ```

mod action;
mod client;
mod endpoint;
mod request;
mod settings;
mod wire;

pub use action::{Action, read_request, write_action};
pub use client::{PolicyClient, PolicyError};
pub use endpoint::Endpoint;
pub use request::{Request, SMTPD_ACCESS_POLICY, new_instance, state};
pub use settings::{PolicyService, PolicySettings};
pub use wire::{Limits, ProtocolError, ReadError};
