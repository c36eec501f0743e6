//! DKIM signing (RFC 6376) with keys that live in another process:
//! mail-auth canonicalizes and hashes the message here, and asks a
//! [`KeyHolder`] (tlskeys, for cleanup) to sign the header data it built.
//! The key never enters this process.

use std::fmt;

use mail_auth::Error;
use mail_auth::common::crypto::{Algorithm, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};

/// The signature algorithms a DKIM key can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    RsaSha256,
    Ed25519Sha256,
}

impl KeyAlgorithm {
    fn mail_auth(self) -> Algorithm {
        match self {
            KeyAlgorithm::RsaSha256 => Algorithm::RsaSha256,
            KeyAlgorithm::Ed25519Sha256 => Algorithm::Ed25519Sha256,
        }
    }
}

/// Where the private keys are: signs the header data DKIM and ARC sign.
pub trait KeyHolder {
    /// The algorithm of the key `name`.
    fn algorithm(&self, name: &str) -> Result<KeyAlgorithm, String>;
    /// The signature of `data` (the canonicalized header fields, ending
    /// with the signature header whose b= is empty) with key `name`.
    fn sign(&self, name: &str, data: &[u8]) -> Result<Vec<u8>, String>;
    /// The same for an ARC set: `data` ends with the ARC-Message-Signature
    /// or ARC-Seal field being made.
    fn sign_arc(&self, name: &str, data: &[u8]) -> Result<Vec<u8>, String>;
}

/// A key of dkim_key_table, by name, with the domain and selector it
/// signs as.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'a> {
    pub name: &'a str,
    pub domain: &'a str,
    pub selector: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The key holder could not be asked, or refused.
    Key(String),
    /// mail-auth could not sign the message (no header to sign, ...).
    Message(String),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Key(e) => write!(f, "key holder: {e}"),
            SignError::Message(e) => write!(f, "cannot sign the message: {e}"),
        }
    }
}

impl std::error::Error for SignError {}

/// mail-auth's signing key whose signatures the holder makes.
pub(crate) struct Remote<'a> {
    holder: &'a dyn KeyHolder,
    name: &'a str,
    algorithm: KeyAlgorithm,
    /// Asks for ARC signatures rather than DKIM ones.
    arc: bool,
}

impl SigningKey for Remote<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(1024);
        input.write(&mut data);
        let signed = if self.arc {
            self.holder.sign_arc(self.name, &data)
        } else {
            self.holder.sign(self.name, &data)
        };
        signed.map_err(|e| Error::Io(format!("signing with key {}: {e}", self.name)))
    }

    fn algorithm(&self) -> Algorithm {
        self.algorithm.mail_auth()
    }
}

pub(crate) fn remote<'a>(
    holder: &'a dyn KeyHolder,
    key: &KeyRef<'a>,
    arc: bool,
) -> Result<Remote<'a>, SignError> {
    Ok(Remote {
        holder,
        name: key.name,
        algorithm: holder.algorithm(key.name).map_err(SignError::Key)?,
        arc,
    })
}

pub(crate) fn signing_error(e: Error) -> SignError {
    match e {
        Error::Io(e) => SignError::Key(e),
        other => SignError::Message(other.to_string()),
    }
}

/// The DKIM-Signature header for `message` (relaxed/relaxed), ending in
/// CRLF, to put above it.
pub fn dkim_signature(
    holder: &dyn KeyHolder,
    key: &KeyRef<'_>,
    headers: &[String],
    message: &[u8],
) -> Result<String, SignError> {
    let signature = DkimSigner::from_key(remote(holder, key, false)?)
        .domain(key.domain)
        .selector(key.selector)
        .headers(headers.iter().map(String::as_str))
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(message)
        .map_err(signing_error)?;
    Ok(signature.to_header())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::crypto::Ed25519Key;

    /// A holder with an Ed25519 key in memory, for the tests.
    struct Local(Ed25519Key);

    impl KeyHolder for Local {
        fn algorithm(&self, _: &str) -> Result<KeyAlgorithm, String> {
            Ok(KeyAlgorithm::Ed25519Sha256)
        }
        fn sign(&self, _: &str, data: &[u8]) -> Result<Vec<u8>, String> {
            self.0.sign(data).map_err(|e| e.to_string())
        }
        fn sign_arc(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, String> {
            Err("not for DKIM".into())
        }
    }

    const MESSAGE: &str =
        "From: Bob <bob@example.com>\r\nTo: alice@example.org\r\nSubject: hi\r\n\r\nHello.\r\n";

    fn holder() -> Local {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        Local(Ed25519Key::from_pkcs8_der(&pkcs8).unwrap())
    }

    #[test]
    fn dkim_signatures_name_the_key() {
        let key = KeyRef {
            name: "k",
            domain: "example.com",
            selector: "sel",
        };
        let headers = vec!["From".to_string(), "Subject".to_string()];
        let header = dkim_signature(&holder(), &key, &headers, MESSAGE.as_bytes()).unwrap();
        assert!(
            header.starts_with(
                "DKIM-Signature: v=1; a=ed25519-sha256; s=sel; d=example.com; c=relaxed/relaxed;"
            ),
            "{header}"
        );
        assert!(header.ends_with("\r\n"));
    }
}
