//! The fingerprint security level (Postfix's `fingerprint`): the server's
//! certificate is accepted when the digest of its DER encoding, or of its
//! public key (SubjectPublicKeyInfo), is one of the configured
//! fingerprints (smtp_tls_fingerprint_cert_match, or a policy entry's
//! `match=`), whoever issued it. The digest is smtp_tls_fingerprint_digest.

use mailgate_config::FingerprintDigest;
use ring::digest::{self, Algorithm};
use rustls::pki_types::CertificateDer;

/// The fingerprints one delivery accepts, and the digest they are taken with.
#[derive(Debug)]
pub struct Fingerprints {
    algorithm: &'static Algorithm,
    values: Vec<Vec<u8>>,
}

impl Fingerprints {
    pub fn new(digest: FingerprintDigest, values: Vec<Vec<u8>>) -> Fingerprints {
        let algorithm = match digest {
            FingerprintDigest::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            FingerprintDigest::Sha256 => &digest::SHA256,
            FingerprintDigest::Sha384 => &digest::SHA384,
            FingerprintDigest::Sha512 => &digest::SHA512,
        };
        Fingerprints { algorithm, values }
    }

    /// Whether the certificate's digest, or its public key's, is one of the
    /// fingerprints.
    pub fn accept(&self, end_entity: &CertificateDer<'_>) -> bool {
        let cert = digest::digest(self.algorithm, end_entity.as_ref());
        let key = webpki::EndEntityCert::try_from(end_entity)
            .ok()
            .map(|c| digest::digest(self.algorithm, c.subject_public_key_info().as_ref()));
        self.values.iter().any(|v| {
            v.as_slice() == cert.as_ref()
                || key.as_ref().is_some_and(|k| v.as_slice() == k.as_ref())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_or_key_digest_matches() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.com".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().clone();
        let cert_digest = digest::digest(&digest::SHA256, der.as_ref())
            .as_ref()
            .to_vec();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let key_digest = digest::digest(&digest::SHA256, &spki).as_ref().to_vec();
        let by_cert = Fingerprints::new(FingerprintDigest::Sha256, vec![cert_digest.clone()]);
        assert!(by_cert.accept(&der));
        let by_key = Fingerprints::new(FingerprintDigest::Sha256, vec![key_digest]);
        assert!(by_key.accept(&der));
        let other = Fingerprints::new(FingerprintDigest::Sha256, vec![vec![0xab; 32]]);
        assert!(!other.accept(&der));
        // The same value read as another digest does not match.
        let sha512 = Fingerprints::new(FingerprintDigest::Sha512, vec![cert_digest]);
        assert!(!sha512.accept(&der));
    }
}
