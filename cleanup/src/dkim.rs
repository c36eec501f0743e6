//! DKIM signing of the organisation's mail (dkim_signing_table): the key
//! for the From: address, the signature computed by mail-auth here over
//! the message as it is queued, and signed by tlskeys, which holds the
//! key. cleanup never reads a key file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mailgate_config::sender_auth::Signing;
use mailgate_mailauth::sign::{KeyAlgorithm, KeyHolder, KeyRef, dkim_signature};
use mailgate_tls::protocol::{Reply, Request, SERVICE};
use mailgate_tls::remote::KeyClient;

/// How long tlskeys may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Signer {
    signing: Signing,
    keys: Tlskeys,
}

/// tlskeys, which holds the keys and signs for cleanup.
pub struct Tlskeys {
    client: Arc<KeyClient>,
}

impl Tlskeys {
    pub fn new() -> Tlskeys {
        // tlskeys' socket, relative to the spool (the working directory
        // once the sandbox is in place).
        Tlskeys {
            client: KeyClient::new(PathBuf::from("private").join(SERVICE), TIMEOUT),
        }
    }

    fn signature(&self, request: &Request) -> Result<Vec<u8>, String> {
        match self.client.call(request) {
            Ok(Reply::Signature(signature)) => Ok(signature),
            Ok(Reply::Refused(why)) => Err(format!("tlskeys refused: {why}")),
            Ok(_) => Err("tlskeys answered out of turn".into()),
            Err(e) => Err(format!("cannot reach tlskeys: {e}")),
        }
    }
}

impl Signer {
    /// None when dkim_signing_table is not set.
    pub fn load(config: &mailgate_config::MainConfig) -> Result<Option<Signer>, String> {
        let Some(signing) = Signing::load(config).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        Ok(Some(Signer {
            signing,
            keys: Tlskeys::new(),
        }))
    }

    /// The DKIM-Signature header (ending in CRLF) for `message`, whose
    /// From: address the signing table gives a key; None when it gives
    /// none. Blocking: call it off the runtime's threads.
    pub fn signature(&self, message: &[u8]) -> Result<Option<String>, String> {
        let Some(from) = from_address(message) else {
            return Ok(None);
        };
        let Some(key) = self.signing.key_for(&from).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let key = KeyRef {
            name: &key.name,
            domain: &key.domain,
            selector: &key.selector,
        };
        dkim_signature(&self.keys, &key, &self.signing.headers, message)
            .map(Some)
            .map_err(|e| format!("DKIM signing for {from} with key {}: {e}", key.name))
    }
}

impl KeyHolder for Tlskeys {
    fn algorithm(&self, name: &str) -> Result<KeyAlgorithm, String> {
        let request = Request::DkimAlgorithm { key: name.into() };
        match self.client.call(&request) {
            Ok(Reply::DkimAlgorithm(a)) if a == "rsa-sha256" => Ok(KeyAlgorithm::RsaSha256),
            Ok(Reply::DkimAlgorithm(a)) if a == "ed25519-sha256" => Ok(KeyAlgorithm::Ed25519Sha256),
            Ok(Reply::Refused(why)) => Err(format!("tlskeys refused: {why}")),
            Ok(_) => Err("tlskeys answered out of turn".into()),
            Err(e) => Err(format!("cannot reach tlskeys: {e}")),
        }
    }

    fn sign(&self, name: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        self.signature(&Request::DkimSign {
            key: name.into(),
            data: data.to_vec(),
        })
    }

    fn sign_arc(&self, name: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        self.signature(&Request::ArcSign {
            key: name.into(),
            data: data.to_vec(),
        })
    }
}

/// The address of the (first) From: field, without display name or angle
/// brackets.
fn from_address(message: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message)?;
    let from = parsed.from()?.first()?;
    from.address().map(|a| a.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_addresses() {
        assert_eq!(
            from_address(b"Subject: x\r\nFrom: Alice <Alice@Example.ORG>\r\n\r\nbody\r\n"),
            Some("alice@example.org".into())
        );
        assert_eq!(
            from_address(b"From: bob@example.com, carol@example.net\r\n\r\n"),
            Some("bob@example.com".into())
        );
        assert_eq!(from_address(b"Subject: none\r\n\r\n"), None);
    }
}
