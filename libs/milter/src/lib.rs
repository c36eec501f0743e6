//! A milter client as Postfix's smtpd is one (protocol version 6):
//! negotiation, the events of an SMTP session with the macros Postfix
//! sends, the modifications at the end of a message, and
//! milter_default_action when a milter fails. See DESIGN.md, "Milters".

pub mod client;
pub mod header_checks;
pub mod macros;
pub mod message;
pub mod verdict;
pub mod wire;

mod group;

pub use client::{Edit, Milter};
pub use group::{Envelope, HeaderChecks, HeaderVerdict, Milters, NoHeaderChecks, Outcome};
pub use macros::{MacroLists, Macros, Stage};
pub use mailgate_config::milter as spec;
pub use message::Message;
pub use spec::{Address, DefaultAction, Defaults, MilterSpec, SpecError, parse_list};
pub use verdict::Verdict;
