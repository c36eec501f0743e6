//! What a TLS connection negotiated, in Postfix's words: the log line
//! (`Anonymous TLS connection established from host[ip]: TLSv1.3 with
//! cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519
//! server-signature ECDSA (prime256v1) server-digest SHA256`) and the
//! comment in the Received header (`(using TLSv1.3 with cipher ...)`), as
//! Postfix's tls_log_summary() and smtpd's Received header write them.

use rustls::{
    CipherSuite, CommonState, HandshakeKind, NamedGroup, ProtocolVersion, SignatureScheme,
};

/// How far the peer's certificate was checked, Postfix's first word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// No certificate (a client that sent none; Postfix's server side).
    Anonymous,
    /// A certificate that does not chain to a trusted CA.
    Untrusted,
    /// A trusted chain, name not checked or not matching.
    Trusted,
    /// A trusted chain whose name matches.
    Verified,
}

impl Trust {
    pub fn word(self) -> &'static str {
        match self {
            Trust::Anonymous => "Anonymous",
            Trust::Untrusted => "Untrusted",
            Trust::Trusted => "Trusted",
            Trust::Verified => "Verified",
        }
    }
}

/// A handshake signature: "RSA-PSS (2048 bits)", "ECDSA (prime256v1)".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub kind: String,
    pub detail: Option<String>,
    /// The digest, "SHA256"; none for Ed25519.
    pub digest: Option<&'static str>,
}

impl Signature {
    /// The signature a scheme makes, with what is known of the key.
    pub fn from_scheme(scheme: SignatureScheme, detail: Option<String>) -> Signature {
        let kind = match scheme {
            SignatureScheme::RSA_PSS_SHA256
            | SignatureScheme::RSA_PSS_SHA384
            | SignatureScheme::RSA_PSS_SHA512 => "RSA-PSS",
            SignatureScheme::RSA_PKCS1_SHA256
            | SignatureScheme::RSA_PKCS1_SHA384
            | SignatureScheme::RSA_PKCS1_SHA512 => "RSA",
            SignatureScheme::ECDSA_NISTP256_SHA256
            | SignatureScheme::ECDSA_NISTP384_SHA384
            | SignatureScheme::ECDSA_NISTP521_SHA512 => "ECDSA",
            SignatureScheme::ED25519 => "ED25519",
            SignatureScheme::ED448 => "ED448",
            _ => "unknown",
        };
        let detail = detail.or_else(|| {
            match scheme {
                SignatureScheme::ECDSA_NISTP256_SHA256 => Some("prime256v1"),
                SignatureScheme::ECDSA_NISTP384_SHA384 => Some("secp384r1"),
                SignatureScheme::ECDSA_NISTP521_SHA512 => Some("secp521r1"),
                _ => None,
            }
            .map(str::to_string)
        });
        Signature {
            kind: kind.to_string(),
            detail,
            digest: digest(scheme),
        }
    }
}

fn digest(scheme: SignatureScheme) -> Option<&'static str> {
    match scheme {
        SignatureScheme::RSA_PSS_SHA256
        | SignatureScheme::RSA_PKCS1_SHA256
        | SignatureScheme::ECDSA_NISTP256_SHA256 => Some("SHA256"),
        SignatureScheme::RSA_PSS_SHA384
        | SignatureScheme::RSA_PKCS1_SHA384
        | SignatureScheme::ECDSA_NISTP384_SHA384 => Some("SHA384"),
        SignatureScheme::RSA_PSS_SHA512
        | SignatureScheme::RSA_PKCS1_SHA512
        | SignatureScheme::ECDSA_NISTP521_SHA512 => Some("SHA512"),
        _ => None,
    }
}

/// What was negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Details {
    /// "TLSv1.3" or "TLSv1.2".
    pub protocol: &'static str,
    /// OpenSSL's name for the cipher suite, as Postfix logs it.
    pub cipher: &'static str,
    pub bits: u16,
    /// Key exchange group (logged for TLS 1.3 only, as Postfix does).
    pub kex: Option<&'static str>,
    pub server_signature: Option<Signature>,
    pub client_signature: Option<Signature>,
    /// A resumed session (Postfix: "reused").
    pub reused: bool,
}

impl Details {
    /// From a connection whose handshake is complete; None before.
    pub fn of(state: &CommonState) -> Option<Details> {
        let protocol = match state.protocol_version()? {
            ProtocolVersion::TLSv1_3 => "TLSv1.3",
            ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "unknown",
        };
        let (cipher, bits) = cipher_name(state.negotiated_cipher_suite()?.suite());
        let kex = (protocol == "TLSv1.3")
            .then(|| {
                state
                    .negotiated_key_exchange_group()
                    .map(|g| group_name(g.name()))
            })
            .flatten();
        Some(Details {
            protocol,
            cipher,
            bits,
            kex,
            server_signature: None,
            client_signature: None,
            reused: state.handshake_kind() == Some(HandshakeKind::Resumed),
        })
    }

    /// The text after the colon of the log line, and inside the Received
    /// comment: `TLSv1.3 with cipher X (256/256 bits) key-exchange ...`.
    fn description(&self, fold: &str) -> String {
        let mut text = format!(
            "{} with cipher {} ({}/{} bits)",
            self.protocol, self.cipher, self.bits, self.bits
        );
        // Postfix logs key exchange and signatures for TLS 1.3 only, and
        // no signatures for a resumed session.
        if self.protocol != "TLSv1.3" {
            return text;
        }
        let mut sep = fold;
        if let Some(kex) = self.kex {
            text.push_str(&format!("{sep}key-exchange {kex}"));
            sep = " ";
        }
        if self.reused {
            return text;
        }
        for (role, sig) in [
            ("server", &self.server_signature),
            ("client", &self.client_signature),
        ] {
            let Some(sig) = sig else { continue };
            text.push_str(&format!("{sep}{role}-signature {}", sig.kind));
            sep = " ";
            if let Some(detail) = &sig.detail {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(digest) = sig.digest {
                text.push_str(&format!(" {role}-digest {digest}"));
            }
        }
        text
    }

    /// The log line: `Anonymous TLS connection established from
    /// host[ip]: ...` (direction "from" in smtpd, "to" in relay).
    pub fn log_line(&self, trust: Trust, direction: &str, peer: &str) -> String {
        format!(
            "{} TLS connection {} {direction} {peer}: {}",
            trust.word(),
            if self.reused { "reused" } else { "established" },
            self.description(" ")
        )
    }

    /// The comment smtpd puts in the Received header, folded as Postfix
    /// folds it: `(using TLSv1.3 with cipher ... (256/256 bits)` then, on a
    /// continuation line, `key-exchange ... server-digest SHA256)`.
    pub fn received_comment(&self) -> String {
        format!("(using {})", self.description("\n\t "))
    }
}

/// OpenSSL's names, which Postfix logs, and the key size.
fn cipher_name(suite: CipherSuite) -> (&'static str, u16) {
    match suite {
        CipherSuite::TLS13_AES_256_GCM_SHA384 => ("TLS_AES_256_GCM_SHA384", 256),
        CipherSuite::TLS13_AES_128_GCM_SHA256 => ("TLS_AES_128_GCM_SHA256", 128),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => ("TLS_CHACHA20_POLY1305_SHA256", 256),
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
            ("ECDHE-ECDSA-AES256-GCM-SHA384", 256)
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
            ("ECDHE-ECDSA-AES128-GCM-SHA256", 128)
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-ECDSA-CHACHA20-POLY1305", 256)
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => ("ECDHE-RSA-AES256-GCM-SHA384", 256),
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => ("ECDHE-RSA-AES128-GCM-SHA256", 128),
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-RSA-CHACHA20-POLY1305", 256)
        }
        _ => ("unknown", 0),
    }
}

fn group_name(group: NamedGroup) -> &'static str {
    match group {
        NamedGroup::X25519 => "X25519",
        NamedGroup::secp256r1 => "secp256r1",
        NamedGroup::secp384r1 => "secp384r1",
        NamedGroup::secp521r1 => "secp521r1",
        NamedGroup::X448 => "X448",
        NamedGroup::X25519MLKEM768 => "X25519MLKEM768",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls13() -> Details {
        Details {
            protocol: "TLSv1.3",
            cipher: "TLS_AES_256_GCM_SHA384",
            bits: 256,
            kex: Some("X25519"),
            server_signature: Some(Signature::from_scheme(
                SignatureScheme::ECDSA_NISTP256_SHA256,
                None,
            )),
            client_signature: None,
            reused: false,
        }
    }

    #[test]
    fn log_lines_as_postfix_writes_them() {
        assert_eq!(
            tls13().log_line(Trust::Anonymous, "from", "unknown[127.0.0.1]"),
            "Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1.3 with cipher \
             TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA \
             (prime256v1) server-digest SHA256"
        );
        let rsa = Details {
            server_signature: Some(Signature::from_scheme(
                SignatureScheme::RSA_PSS_SHA256,
                Some("2048 bits".into()),
            )),
            ..tls13()
        };
        assert!(
            rsa.log_line(Trust::Verified, "to", "mx.example.com[192.0.2.1]:25")
                .starts_with(
                    "Verified TLS connection established to mx.example.com[192.0.2.1]:25: "
                )
        );
        assert!(
            rsa.log_line(Trust::Trusted, "to", "h[ip]:25")
                .ends_with("server-signature RSA-PSS (2048 bits) server-digest SHA256")
        );
        let tls12 = Details {
            protocol: "TLSv1.2",
            cipher: "ECDHE-RSA-AES256-GCM-SHA384",
            ..tls13()
        };
        assert_eq!(
            tls12.log_line(Trust::Untrusted, "to", "h[ip]:25"),
            "Untrusted TLS connection established to h[ip]:25: TLSv1.2 with cipher \
             ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)"
        );
        let resumed = Details {
            reused: true,
            ..tls13()
        };
        assert_eq!(
            resumed.log_line(Trust::Anonymous, "from", "h[ip]"),
            "Anonymous TLS connection reused from h[ip]: TLSv1.3 with cipher \
             TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
        );
    }

    #[test]
    fn received_comment_is_folded() {
        assert_eq!(
            tls13().received_comment(),
            "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n\t \
             key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256)"
        );
        let tls12 = Details {
            protocol: "TLSv1.2",
            cipher: "ECDHE-ECDSA-AES128-GCM-SHA256",
            bits: 128,
            ..tls13()
        };
        assert_eq!(
            tls12.received_comment(),
            "(using TLSv1.2 with cipher ECDHE-ECDSA-AES128-GCM-SHA256 (128/128 bits))"
        );
    }
}
