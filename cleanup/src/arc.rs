//! ARC sealing (RFC 8617, arc_sealing) of mail from outside that the
//! scanner checked: the set is computed here by mail-auth over the message
//! as it is queued (after the Subject tag and the scanner's headers), with
//! the chain state the scanner verified, and signed by tlskeys, which
//! holds arc_seal_key. cleanup never reads a key file.

use mailgate_config::sender_auth::ArcSealing;
use mailgate_ipc::protocol::scanner::Authenticated;
use mailgate_mailauth::seal::{Verified, arc_set};
use mailgate_mailauth::sign::{KeyRef, SignError};

use crate::dkim::Tlskeys;

pub struct Sealer {
    sealing: ArcSealing,
    keys: Tlskeys,
}

/// What sealing one message came to.
pub enum Sealed {
    /// The ARC set, ending in CRLF, to put on top.
    Set(String),
    /// The message cannot carry a set (its chain is malformed or failed
    /// already): it goes on unsealed, for this reason.
    Unsealable(String),
}

impl Sealer {
    /// None when arc_sealing = no.
    pub fn load(config: &mailgate_config::MainConfig) -> Result<Option<Sealer>, String> {
        Ok(ArcSealing::load(config)
            .map_err(|e| e.to_string())?
            .map(|sealing| Sealer {
                sealing,
                keys: Tlskeys::new(),
            }))
    }

    /// Seals `message`, the whole message as queued. An error is tlskeys
    /// not answering or refusing: the message is deferred, not delivered
    /// unsealed. Blocking: call it off the runtime's threads.
    pub fn seal(&self, message: &[u8], auth: &Authenticated) -> Result<Sealed, String> {
        let key = &self.sealing.key;
        let key_ref = KeyRef {
            name: &key.name,
            domain: &key.domain,
            selector: &key.selector,
        };
        let verified = Verified {
            chain: auth.arc,
            sets: auth.arc_sets,
        };
        match arc_set(
            &self.keys,
            &key_ref,
            &self.sealing.headers,
            message,
            &auth.results,
            verified,
        ) {
            Ok(set) => Ok(Sealed::Set(set)),
            Err(SignError::Message(why)) => Ok(Sealed::Unsealable(why)),
            Err(e @ SignError::Key(_)) => Err(format!("ARC sealing with key {}: {e}", key.name)),
        }
    }
}
