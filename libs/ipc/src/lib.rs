//! How mailgate's processes talk: framed messages with descriptors over Unix
//! sockets, the protocol of each pair of processes, what the master hands a
//! worker, and the spool with its queue file format.

pub mod anvil_counts;
pub mod auth;
pub mod channel;
pub mod envelope;
pub mod group_sync;
pub mod handoff;
pub mod peer;
pub mod protocol;
pub mod queue_file;
pub mod server;
pub mod spool;
pub mod submit;
pub mod validate;

pub use channel::{Channel, IpcError};
