//! mailgate configuration: main.cf and master.cf in Postfix syntax, lookup tables,
//! domain and network lists, next-hop routing, and the `mailgate check` logic.
//!
//! Every configuration error is reported with its file and line, and loading collects
//! all errors rather than stopping at the first.

mod address;
mod aliases;
mod check;
mod clamd;
pub mod client_score;
pub mod content_action;
pub mod content_reject;
mod debug_peers;
mod descriptions;
mod endpoint;
mod error;
mod filter_check;
mod inet;
mod lines;
mod lists;
mod local;
mod main_cf;
mod master_cf;
pub mod milter;
mod mynetworks;
mod net;
mod params;
pub mod policy;
pub mod processes;
pub mod restrictions;
mod rewrite;
mod route;
mod sasl;
pub mod sender_auth;
pub mod status;
mod table;
mod tls;
mod tls_check;
pub mod unimplemented;
pub mod verify;

pub use address::split_address;
pub use check::{Report, check};
pub use clamd::{ClamdTransfer, ClamdTransferError};
pub use debug_peers::DebugPeers;
pub use endpoint::{Endpoint, EndpointError};
pub use error::{ConfigError, Diagnostic};
pub use inet::InetProtocols;
pub use lines::{split_list, strip_braces};
pub use lists::{DomainList, NetworkList};
pub use local::{LocalRecipients, is_passwd_table};
pub use main_cf::{MainConfig, Override};
pub use master_cf::{MasterConfig, ServiceEntry, ServiceKind};
pub use params::{ParameterDoc, documentation as parameter_documentation};
pub use rewrite::{RewriteError, Rewriting};
pub use route::{Route, Router};
pub use sasl::{ImapTls, SaslBackend, SaslConfigError, mechanisms_allowed};
pub use table::{AddressLookup, Table, lookup_address, open_tables};
pub use tls::{
    ClientLevel, FingerprintDigest, KeySource, Protocols, ServerLevel, Side, TlsConfigError,
    check_cipher_grade, excluded_cipher_fragments, fingerprint_cert_match, key_sources,
    parse_fingerprints,
};

/// The known parameter an unknown name was probably meant to be, for a
/// "did you mean" hint.
pub fn suggest_parameter(name: &str) -> Option<&'static str> {
    params::suggest(name)
}
