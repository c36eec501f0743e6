//! Reading certificates and keys from PEM files, as Postfix's
//! `*_tls_cert_file`, `*_tls_key_file` and `*_tls_chain_files` name them.
//!
//! Only tlskeys reads files that hold private keys. smtpd and relay read
//! CA certificates (for verifying peers) and get their own certificate
//! chains from tlskeys, so a key never passes through their memory.

use std::fmt;
use std::path::{Path, PathBuf};

use mailgate_config::KeySource;
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug)]
pub enum PemError {
    Read {
        path: PathBuf,
        reason: String,
    },
    NoCertificate {
        path: PathBuf,
    },
    NoKey {
        path: PathBuf,
    },
    /// A chain file where a certificate comes before any key, or a key has
    /// no certificate after it.
    ChainOrder {
        path: PathBuf,
    },
    TooManyKeys {
        path: PathBuf,
    },
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemError::Read { path, reason } => {
                write!(f, "cannot read {}: {reason}", path.display())
            }
            PemError::NoCertificate { path } => {
                write!(f, "{}: no PEM certificate in the file", path.display())
            }
            PemError::NoKey { path } => write!(
                f,
                "{}: no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in the file",
                path.display()
            ),
            PemError::ChainOrder { path } => write!(
                f,
                "{}: a chain file must hold each private key followed by its certificate chain, \
                 server certificate first",
                path.display()
            ),
            PemError::TooManyKeys { path } => write!(
                f,
                "{}: more than one private key in a key file (use *_tls_chain_files for several)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for PemError {}

/// A private key with its certificate chain (server or client certificate
/// first).
pub struct KeyPair {
    pub key: PrivateKeyDer<'static>,
    pub chain: Vec<CertificateDer<'static>>,
}

fn sections(path: &Path) -> Result<Vec<(SectionKind, Vec<u8>)>, PemError> {
    let read_error = |reason: String| PemError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| read_error(e.to_string()))?;
    <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| read_error(format!("malformed PEM: {e}")))
}

fn key_of(kind: SectionKind, der: Vec<u8>) -> Option<PrivateKeyDer<'static>> {
    match kind {
        SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.into())),
        SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.into())),
        SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.into())),
        _ => None,
    }
}

/// Every certificate in a file, in order.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let chain: Vec<CertificateDer<'static>> = sections(path)?
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if chain.is_empty() {
        return Err(PemError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// The key pairs a source names: one for a cert/key pair (the two may be
/// the same file), one per key in a chain file.
pub fn key_pairs(source: &KeySource) -> Result<Vec<KeyPair>, PemError> {
    if source.chain_file {
        return chain_file(&source.key);
    }
    let chain = certificates(&source.cert)?;
    let mut keys = sections(&source.key)?
        .into_iter()
        .filter_map(|(kind, der)| key_of(kind, der));
    let key = keys.next().ok_or_else(|| PemError::NoKey {
        path: source.key.clone(),
    })?;
    if keys.next().is_some() {
        return Err(PemError::TooManyKeys {
            path: source.key.clone(),
        });
    }
    Ok(vec![KeyPair { key, chain }])
}

/// Postfix's chain file: key, its certificates, the next key, its
/// certificates, ...
fn chain_file(path: &Path) -> Result<Vec<KeyPair>, PemError> {
    let order = || PemError::ChainOrder {
        path: path.to_path_buf(),
    };
    let mut pairs: Vec<KeyPair> = Vec::new();
    for (kind, der) in sections(path)? {
        if kind == SectionKind::Certificate {
            pairs.last_mut().ok_or_else(order)?.chain.push(der.into());
        } else if let Some(key) = key_of(kind, der) {
            if pairs.last().is_some_and(|p| p.chain.is_empty()) {
                return Err(order());
            }
            pairs.push(KeyPair {
                key,
                chain: Vec::new(),
            });
        }
    }
    if pairs.is_empty() {
        return Err(PemError::NoKey {
            path: path.to_path_buf(),
        });
    }
    if pairs.iter().any(|p| p.chain.is_empty()) {
        return Err(order());
    }
    Ok(pairs)
}

/// CA certificates for verifying peers: a file (`*_tls_CAfile`), a
/// directory of PEM files (`*_tls_CApath`), or, when both are empty, the
/// system's bundle. Files in a directory that hold no certificate are
/// skipped, as OpenSSL's hashed directories hold other links too.
pub fn ca_certificates(
    file: Option<&Path>,
    dir: Option<&Path>,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let mut out = Vec::new();
    if let Some(file) = file {
        out.extend(certificates(file)?);
    }
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir).map_err(|e| PemError::Read {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            if let Ok(certs) = certificates(path) {
                out.extend(certs);
            }
        }
    }
    if file.is_none() && dir.is_none() {
        out.extend(certificates(Path::new(SYSTEM_BUNDLE))?);
    }
    Ok(out)
}

/// Debian's bundle of the system's trusted CAs (package ca-certificates).
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_chain_files_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let both = dir.path().join("both.pem");
        std::fs::write(&both, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
        let source = |path: &Path, chain_file| KeySource {
            key: path.to_path_buf(),
            cert: path.to_path_buf(),
            chain_file,
        };
        let pairs = key_pairs(&source(&both, false)).unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].chain.len(), 1);
        let pairs = key_pairs(&source(&both, true)).unwrap();
        assert_eq!(pairs.len(), 1);

        let key2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert2 = rcgen::CertificateParams::new(vec!["mx.example.com".into()])
            .unwrap()
            .self_signed(&key2)
            .unwrap();
        let chain = dir.path().join("chain.pem");
        std::fs::write(
            &chain,
            format!(
                "{}{}{}{}",
                key.serialize_pem(),
                cert.pem(),
                key2.serialize_pem(),
                cert2.pem()
            ),
        )
        .unwrap();
        assert_eq!(key_pairs(&source(&chain, true)).unwrap().len(), 2);
        // Two keys in a plain key file is a mistake, not a choice.
        assert!(matches!(
            key_pairs(&source(&chain, false)),
            Err(PemError::TooManyKeys { .. })
        ));
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        assert!(matches!(
            key_pairs(&source(&bad, true)),
            Err(PemError::ChainOrder { .. })
        ));
        let certs_only = dir.path().join("cert.pem");
        std::fs::write(&certs_only, cert.pem()).unwrap();
        assert!(matches!(
            key_pairs(&source(&certs_only, false)),
            Err(PemError::NoKey { .. })
        ));
        assert!(matches!(
            certificates(&dir.path().join("missing")),
            Err(PemError::Read { .. })
        ));
        assert_eq!(
            ca_certificates(Some(&certs_only), Some(dir.path()))
                .unwrap()
                .len(),
            // The file, then every certificate in the directory's files.
            1 + 1 + 2 + 1 + 1
        );
    }
}
