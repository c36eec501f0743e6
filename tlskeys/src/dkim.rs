//! The DKIM signing keys of dkim_key_table, read before the sandbox like
//! the TLS keys. cleanup asks for signatures by key name; a request is
//! signed only when its data ends with a DKIM-Signature field of that
//! key's own domain and selector (mailgate_tls::protocol::dkim_context),
//! or, for arc_seal_key only, an ARC-Message-Signature or ARC-Seal field
//! of them (arc_context).
//! The signatures are mail-auth's (ring), as a verifier expects them:
//! RSASSA-PKCS1-v1_5 with SHA-256 over the data, or Ed25519 over its
//! SHA-256 hash (RFC 8463).

use std::collections::HashMap;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mailgate_config::MainConfig;
use mailgate_config::sender_auth::{ArcSealing, DkimKey, Signing, load_keys};
use mailgate_tls::protocol::{Reply, arc_context, dkim_context};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

enum Key {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

struct Held {
    domain: String,
    selector: String,
    key: Key,
}

/// Every key dkim_key_table lists, by name.
#[derive(Default)]
pub struct DkimKeys {
    keys: HashMap<String, Held>,
    /// arc_seal_key, when arc_sealing is on: the one key that seals.
    arc_key: Option<String>,
}

impl DkimKeys {
    /// The keys, when DKIM signing or ARC sealing is configured.
    pub fn load(config: &MainConfig) -> Result<DkimKeys, String> {
        let signing = Signing::load(config).map_err(|e| e.to_string())?;
        let sealing = ArcSealing::load(config).map_err(|e| e.to_string())?;
        if signing.is_none() && sealing.is_none() {
            return Ok(DkimKeys::default());
        }
        let mut keys = HashMap::new();
        for entry in &load_keys(config).map_err(|e| e.to_string())? {
            let key = read_key(entry).map_err(|e| {
                format!(
                    "dkim_key_table key {}: {}: {e}",
                    entry.name,
                    entry.path.display()
                )
            })?;
            keys.insert(
                entry.name.clone(),
                Held {
                    domain: entry.domain.clone(),
                    selector: entry.selector.clone(),
                    key,
                },
            );
        }
        Ok(DkimKeys {
            keys,
            arc_key: sealing.map(|s| s.key.name),
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn algorithm(&self, name: &str) -> Reply {
        match self.keys.get(name) {
            Some(held) => Reply::DkimAlgorithm(
                match held.key {
                    Key::Rsa(_) => "rsa-sha256",
                    Key::Ed25519(_) => "ed25519-sha256",
                }
                .into(),
            ),
            None => Reply::Refused(format!("no DKIM key {name} (reloaded since?)")),
        }
    }

    pub fn sign(&self, name: &str, data: &[u8]) -> Reply {
        let Some(held) = self.keys.get(name) else {
            return Reply::Refused(format!("no DKIM key {name} (reloaded since?)"));
        };
        if let Err(why) = dkim_context(data, &held.domain, &held.selector) {
            return Reply::Refused(format!("will not sign with DKIM key {name}: {why}"));
        }
        held.signed(data)
    }
}

impl DkimKeys {
    /// An ARC signature (ARC-Message-Signature or ARC-Seal) with
    /// arc_seal_key, and no other key.
    pub fn seal(&self, name: &str, data: &[u8]) -> Reply {
        if self.arc_key.as_deref() != Some(name) {
            return Reply::Refused(format!(
                "will not seal with key {name}: it is not arc_seal_key (reloaded since?)"
            ));
        }
        let Some(held) = self.keys.get(name) else {
            return Reply::Refused(format!("no DKIM key {name} (reloaded since?)"));
        };
        if let Err(why) = arc_context(data, &held.domain, &held.selector) {
            return Reply::Refused(format!("will not seal with key {name}: {why}"));
        }
        held.signed(data)
    }
}

impl Held {
    fn signed(&self, data: &[u8]) -> Reply {
        let signed = match &self.key {
            Key::Rsa(key) => key.sign(data),
            Key::Ed25519(key) => key.sign(data),
        };
        match signed {
            Ok(signature) => Reply::Signature(signature),
            Err(e) => Reply::Refused(format!("signing failed: {e}")),
        }
    }
}

/// An RSA key (PKCS#8 or PKCS#1) or an Ed25519 key (PKCS#8), PEM.
fn read_key(entry: &DkimKey) -> Result<Key, String> {
    let pem = std::fs::read(&entry.path).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("no private key: {e}"))?;
    let ed25519 = match &der {
        PrivateKeyDer::Pkcs8(pkcs8) => {
            Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()).ok()
        }
        _ => None,
    };
    match ed25519 {
        Some(key) => Ok(Key::Ed25519(key)),
        None => RsaKey::<Sha256>::from_key_der(der)
            .map(Key::Rsa)
            .map_err(|_| "neither an RSA nor an Ed25519 key (PKCS#8 or PKCS#1 PEM)".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(arc_key: Option<&str>) -> DkimKeys {
        let mut keys = HashMap::new();
        for (name, selector) in [("arc", "arc1"), ("dkim", "sel1")] {
            let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
            keys.insert(
                name.to_string(),
                Held {
                    domain: "gw.example".into(),
                    selector: selector.into(),
                    key: Key::Ed25519(Ed25519Key::from_pkcs8_der(&pkcs8).unwrap()),
                },
            );
        }
        DkimKeys {
            keys,
            arc_key: arc_key.map(str::to_string),
        }
    }

    const SEAL: &[u8] = b"arc-seal:i=1; a=ed25519-sha256; s=arc1; d=gw.example; cv=none; t=1; b=;";

    #[test]
    fn only_arc_seal_key_seals_and_only_arc_fields() {
        let keys = keys(Some("arc"));
        assert!(matches!(keys.seal("arc", SEAL), Reply::Signature(_)));
        // Another key of the table, even of the same domain, does not seal.
        assert!(matches!(keys.seal("dkim", SEAL), Reply::Refused(_)));
        // The sealing key signs ARC fields only through ArcSign, and
        // ArcSign signs nothing else.
        let dkim = b"dkim-signature:v=1; a=ed25519-sha256; s=arc1; d=gw.example; h=From; bh=x; b=;";
        assert!(matches!(keys.seal("arc", dkim), Reply::Refused(_)));
        assert!(matches!(keys.sign("arc", SEAL), Reply::Refused(_)));
        // Without arc_sealing, nothing seals.
        assert!(matches!(
            self::keys(None).seal("arc", SEAL),
            Reply::Refused(_)
        ));
    }
}
