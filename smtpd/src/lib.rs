//! Not a library: smtpd's parsers of what a client sends (commands,
//! addresses, the DATA stream), in a library target only so the fuzz
//! targets in fuzz/ can reach them. The smtpd binary uses these same
//! modules; nothing else should depend on this crate.

#![doc(hidden)]

pub mod address;
pub mod command;
pub mod data;
pub mod reply;
