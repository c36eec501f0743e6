//! The keys tlskeys holds, and its answer to each request.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::dkim::DkimKeys;
use mailgate_config::{KeySource, MainConfig, MasterConfig, Side as ConfigSide, key_sources};
use mailgate_tls::pem::{self, PemError};
use mailgate_tls::protocol::{KeyInfo, Reply, Request, Side, Source, handshake_context};
use rustls::SignatureScheme;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::SigningKey;

/// The schemes tried against each key, in the order they are preferred.
const SCHEMES: [SignatureScheme; 9] = [
    SignatureScheme::ED25519,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PKCS1_SHA512,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA256,
];

#[derive(Debug)]
pub enum StoreError {
    Config(String),
    File(PemError),
    Key { path: String, reason: String },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Config(e) => write!(f, "{e}"),
            StoreError::File(e) => write!(f, "{e}"),
            StoreError::Key { path, reason } => write!(f, "{path}: unusable private key: {reason}"),
        }
    }
}

impl std::error::Error for StoreError {}

struct Held {
    side: Side,
    info: KeyInfo,
    key: Arc<dyn SigningKey>,
}

/// Every key the configuration names, for either side.
pub struct Store {
    /// By key ID.
    keys: HashMap<[u8; 32], Held>,
    /// Each source's keys, in file order.
    sources: HashMap<Source, Vec<[u8; 32]>>,
    /// dkim_key_table's keys.
    dkim: DkimKeys,
}

/// Each (side, key files) any service may use: main.cf's, and those of
/// every master.cf service's `-o` overrides (a submission service with its
/// own certificate, say).
pub fn configured_sources(
    main: &MainConfig,
    master: &MasterConfig,
) -> Result<Vec<(ConfigSide, KeySource)>, StoreError> {
    let mut configs = vec![main.clone()];
    for service in &master.services {
        if !service.overrides.is_empty() {
            configs.push(
                main.with_overrides(&service.overrides)
                    .map_err(|e| StoreError::Config(e.to_string()))?,
            );
        }
    }
    let mut out: Vec<(ConfigSide, KeySource)> = Vec::new();
    for config in &configs {
        for side in [ConfigSide::Server, ConfigSide::Client] {
            for source in
                key_sources(config, side).map_err(|e| StoreError::Config(e.to_string()))?
            {
                if !out.iter().any(|(s, k)| *s == side && *k == source) {
                    out.push((side, source));
                }
            }
        }
    }
    Ok(out)
}

impl Store {
    pub fn load(sources: &[(ConfigSide, KeySource)], dkim: DkimKeys) -> Result<Store, StoreError> {
        let mut store = Store {
            keys: HashMap::new(),
            sources: HashMap::new(),
            dkim,
        };
        for (side, source) in sources {
            let mut ids = Vec::new();
            for pair in pem::key_pairs(source).map_err(StoreError::File)? {
                let key_error = |reason: String| StoreError::Key {
                    path: source.key.display().to_string(),
                    reason,
                };
                let key = any_supported_type(&pair.key).map_err(|e| key_error(e.to_string()))?;
                let certified = rustls::sign::CertifiedKey::new(pair.chain.clone(), key.clone());
                certified.keys_match().map_err(|e| {
                    key_error(format!(
                        "does not match the certificate in {}: {e}",
                        source.cert.display()
                    ))
                })?;
                let info = key_info(key.as_ref(), &pair.chain).map_err(key_error)?;
                ids.push(info.key_id);
                store.keys.insert(
                    info.key_id,
                    Held {
                        side: (*side).into(),
                        info,
                        key,
                    },
                );
            }
            store.sources.insert(Source::new(*side, source), ids);
        }
        Ok(store)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn dkim_keys(&self) -> usize {
        self.dkim.len()
    }

    pub fn answer(&self, request: Request) -> Reply {
        match request {
            Request::Certificates { sources } => {
                let mut infos = Vec::new();
                for source in &sources {
                    let Some(ids) = self.sources.get(source) else {
                        return Reply::Refused(format!(
                            "no keys loaded for {} (key file {}); tlskeys reads the key files \
                             when it starts: reload after changing them",
                            source.cert, source.key
                        ));
                    };
                    infos.extend(
                        ids.iter()
                            .filter_map(|id| Some(self.keys.get(id)?.info.clone())),
                    );
                }
                Reply::Certificates(infos)
            }
            Request::DkimAlgorithm { key } => self.dkim.algorithm(&key),
            Request::DkimSign { key, data } => self.dkim.sign(&key, &data),
            Request::ArcSign { key, data } => self.dkim.seal(&key, &data),
            Request::Sign {
                key_id,
                scheme,
                message,
            } => {
                let Some(held) = self.keys.get(&key_id) else {
                    return Reply::Refused("no such key (reloaded since?)".into());
                };
                if let Err(why) = handshake_context(held.side, &message) {
                    return Reply::Refused(format!("will not sign: {why}"));
                }
                let scheme = SignatureScheme::from(scheme);
                let Some(signer) = held.key.choose_scheme(&[scheme]) else {
                    return Reply::Refused(format!("the key cannot sign with {scheme:?}"));
                };
                match signer.sign(&message) {
                    Ok(signature) => Reply::Signature(signature),
                    Err(e) => Reply::Refused(format!("signing failed: {e}")),
                }
            }
        }
    }
}

fn key_info(
    key: &dyn SigningKey,
    chain: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<KeyInfo, String> {
    let spki = key
        .public_key()
        .ok_or("the key does not reveal its public key")?
        .as_ref()
        .to_vec();
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    let mut key_id = [0u8; 32];
    key_id.copy_from_slice(digest.as_ref());
    let schemes: Vec<SignatureScheme> = SCHEMES
        .iter()
        .copied()
        .filter(|s| key.choose_scheme(&[*s]).is_some())
        .collect();
    let (kind, detail) = match schemes.first() {
        Some(SignatureScheme::ED25519) => ("ED25519", None),
        Some(SignatureScheme::ECDSA_NISTP384_SHA384) => ("ECDSA", Some("secp384r1".to_string())),
        Some(SignatureScheme::ECDSA_NISTP256_SHA256) => ("ECDSA", Some("prime256v1".to_string())),
        Some(_) => ("RSA-PSS", rsa_bits(&spki).map(|b| format!("{b} bits"))),
        None => return Err("no TLS signature scheme fits the key".into()),
    };
    Ok(KeyInfo {
        key_id,
        chain: chain.iter().map(|c| c.as_ref().to_vec()).collect(),
        spki,
        schemes: schemes.into_iter().map(u16::from).collect(),
        kind: kind.to_string(),
        detail,
    })
}

/// The modulus size of an RSA SubjectPublicKeyInfo:
/// SEQUENCE { SEQUENCE { algorithm }, BIT STRING { SEQUENCE { INTEGER n, INTEGER e } } }.
fn rsa_bits(spki: &[u8]) -> Option<usize> {
    let (_, outer, _) = tlv(spki)?;
    let (_, _, rest) = tlv(outer)?;
    let (tag, bits, _) = tlv(rest)?;
    if tag != 0x03 {
        return None;
    }
    let (_, key, _) = tlv(bits.get(1..)?)?;
    let (tag, modulus, _) = tlv(key)?;
    if tag != 0x02 {
        return None;
    }
    let start = modulus.iter().position(|b| *b != 0)?;
    let modulus = &modulus[start..];
    Some(modulus.len() * 8 - modulus[0].leading_zeros() as usize)
}

/// One DER tag-length-value: (tag, content, what follows).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = der
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let content = der.get(header..header.checked_add(len)?)?;
    Some((tag, content, &der[header + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write_pair(dir: &Path, name: &str, alg: &'static rcgen::SignatureAlgorithm) -> KeySource {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let path = dir.join(name);
        std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
        KeySource {
            key: path.clone(),
            cert: path,
            chain_file: false,
        }
    }

    #[test]
    fn serves_chains_and_signs_only_handshakes() {
        let dir = tempfile::tempdir().unwrap();
        let ec = write_pair(dir.path(), "ec.pem", &rcgen::PKCS_ECDSA_P256_SHA256);
        let rsa_key = dir.path().join("rsa.pem");
        // rcgen cannot make RSA keys with ring; a fixed test key would do,
        // but ECDSA P-384 and Ed25519 cover the other code paths.
        let p384 = write_pair(dir.path(), "p384.pem", &rcgen::PKCS_ECDSA_P384_SHA384);
        let ed = write_pair(dir.path(), "ed.pem", &rcgen::PKCS_ED25519);
        let sources = vec![
            (ConfigSide::Server, ec.clone()),
            (ConfigSide::Server, p384.clone()),
            (ConfigSide::Client, ed.clone()),
        ];
        let store = Store::load(&sources, Default::default()).unwrap();
        assert_eq!(store.len(), 3);
        let Reply::Certificates(infos) = store.answer(Request::Certificates {
            sources: vec![Source::new(ConfigSide::Server, &ec)],
        }) else {
            panic!("no certificates");
        };
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].kind, "ECDSA");
        assert_eq!(infos[0].detail.as_deref(), Some("prime256v1"));
        assert_eq!(
            infos[0].schemes,
            vec![u16::from(SignatureScheme::ECDSA_NISTP256_SHA256)]
        );
        // A file tlskeys did not load is refused, never read.
        let unknown = KeySource {
            key: rsa_key.clone(),
            cert: rsa_key,
            chain_file: false,
        };
        assert!(matches!(
            store.answer(Request::Certificates {
                sources: vec![Source::new(ConfigSide::Server, &unknown)]
            }),
            Reply::Refused(_)
        ));
        let mut message = vec![0x20; 64];
        message.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
        message.extend_from_slice(&[1; 32]);
        let sign = |key_id, scheme: SignatureScheme, message: &[u8]| {
            store.answer(Request::Sign {
                key_id,
                scheme: scheme.into(),
                message: message.to_vec(),
            })
        };
        let id = infos[0].key_id;
        let Reply::Signature(signature) =
            sign(id, SignatureScheme::ECDSA_NISTP256_SHA256, &message)
        else {
            panic!("not signed");
        };
        // The signature verifies with the certificate's public key.
        let point = spki_key_bits(&infos[0].spki);
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &point,
        );
        public.verify(&message, &signature).unwrap();
        assert!(matches!(
            sign(id, SignatureScheme::ED25519, &message),
            Reply::Refused(_)
        ));
        assert!(matches!(
            sign(id, SignatureScheme::ECDSA_NISTP256_SHA256, b"anything else"),
            Reply::Refused(_)
        ));
        assert!(matches!(
            sign([0; 32], SignatureScheme::ECDSA_NISTP256_SHA256, &message),
            Reply::Refused(_)
        ));
    }

    fn spki_key_bits(spki: &[u8]) -> Vec<u8> {
        let (_, outer, _) = tlv(spki).unwrap();
        let (_, _, rest) = tlv(outer).unwrap();
        let (_, bits, _) = tlv(rest).unwrap();
        bits[1..].to_vec()
    }

    #[test]
    fn rsa_modulus_size() {
        // SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING { SEQUENCE { INTEGER n, INTEGER 65537 } } }
        // with a 2048-bit modulus (leading 0x00, then 0xc0...).
        let mut n = vec![0x00, 0xc0];
        n.extend(std::iter::repeat_n(0x11, 255));
        let mut key = vec![0x02, 0x82, 0x01, 0x01];
        key.extend(&n);
        key.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
        let mut inner = vec![0x30, 0x82];
        inner.extend(((key.len()) as u16).to_be_bytes());
        inner.extend(&key);
        let mut bits = vec![0x03, 0x82];
        bits.extend(((inner.len() + 1) as u16).to_be_bytes());
        bits.push(0);
        bits.extend(&inner);
        let alg = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut body = alg.to_vec();
        body.extend(&bits);
        let mut spki = vec![0x30, 0x82];
        spki.extend((body.len() as u16).to_be_bytes());
        spki.extend(&body);
        assert_eq!(rsa_bits(&spki), Some(2048));
        assert_eq!(rsa_bits(&spki[..20]), None);
    }
}
