//! Outbound TLS for relay, as Postfix's smtp(8): the security level (global
//! or per destination from smtp_tls_policy_maps), the protocols and
//! ciphers, the trusted CAs, and a certificate check that records what it
//! found (Untrusted, Trusted, Verified) instead of failing the handshake,
//! so that relay logs the connection and then refuses to deliver over one
//! that is not good enough for the level, with Postfix's words.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mailgate_config::{
    ClientLevel, FingerprintDigest, MainConfig, Protocols, Table, TlsConfigError,
    check_cipher_grade, excluded_cipher_fragments, fingerprint_cert_match, parse_fingerprints,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use crate::fingerprint::Fingerprints;
use crate::pem;
use crate::summary::{Signature, Trust};

#[derive(Debug)]
pub enum ClientTlsError {
    Config(TlsConfigError),
    Table {
        parameter: &'static str,
        reason: String,
    },
    Ca(String),
}

impl fmt::Display for ClientTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientTlsError::Config(e) => write!(f, "{e}"),
            ClientTlsError::Table { parameter, reason } => write!(f, "{parameter}: {reason}"),
            ClientTlsError::Ca(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientTlsError {}

impl From<TlsConfigError> for ClientTlsError {
    fn from(e: TlsConfigError) -> Self {
        ClientTlsError::Config(e)
    }
}

/// What relay reads from main.cf for TLS, once, before its sandbox.
pub struct ClientTls {
    pub level: ClientLevel,
    policy_maps: Vec<Table>,
    protocols: Protocols,
    mandatory_protocols: Protocols,
    exclude: Vec<&'static str>,
    mandatory_exclude: Vec<&'static str>,
    roots: Arc<RootCertStore>,
    /// Whether any trusted CA was loaded (for the error when verify needs one).
    has_roots: bool,
    verify_match: Vec<String>,
    secure_match: Vec<String>,
    /// The fingerprint level's digest and smtp_tls_fingerprint_cert_match.
    fingerprint_digest: FingerprintDigest,
    fingerprints: Vec<Vec<u8>>,
    servername: String,
    sessions: Arc<ClientSessionMemoryCache>,
    provider: Arc<CryptoProvider>,
}

/// The TLS requirements for one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub level: ClientLevel,
    /// Certificate name match strategies for verify and secure
    /// (`hostname`, `nexthop`, `dot-nexthop`, or a name; `.name` matches
    /// its subdomains).
    pub matches: Vec<String>,
    /// At the fingerprint level, the fingerprints accepted (decoded).
    fingerprints: Vec<Vec<u8>>,
    protocols: Option<Protocols>,
    exclude: Option<Vec<&'static str>>,
}

/// What the certificate check found, filled in during the handshake.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub trust: Option<Trust>,
    /// Why the certificate is not trusted or does not match.
    pub problem: Option<String>,
    pub server_signature: Option<Signature>,
}

/// Everything needed to run one client handshake.
pub struct Handshake {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    pub findings: Arc<Mutex<Findings>>,
}

impl ClientTls {
    pub fn load(config: &MainConfig) -> Result<ClientTls, ClientTlsError> {
        let level = ClientLevel::from_config(config)?;
        let dir = config.config_dir();
        let policy_maps = config
            .list("smtp_tls_policy_maps")
            .iter()
            .map(|spec| Table::open(spec, dir))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientTlsError::Table {
                parameter: "smtp_tls_policy_maps",
                reason: e.to_string().replace('\n', "; "),
            })?;
        for grade in ["smtp_tls_ciphers", "smtp_tls_mandatory_ciphers"] {
            check_cipher_grade(grade, &config.get(grade))?;
        }
        let path = |name: &str| {
            let value = config.get(name);
            (!value.trim().is_empty()).then(|| dir.join(value.trim()))
        };
        let (file, capath) = (path("smtp_tls_CAfile"), path("smtp_tls_CApath"));
        let certs = if file.is_none() && capath.is_none() && !Path::new(pem::SYSTEM_BUNDLE).exists()
        {
            Vec::new()
        } else {
            pem::ca_certificates(file.as_deref(), capath.as_deref())
                .map_err(|e| ClientTlsError::Ca(format!("smtp_tls_CAfile/CApath: {e}")))?
        };
        let mut roots = RootCertStore::empty();
        let (_added, _ignored) = roots.add_parsable_certificates(certs);
        let has_roots = !roots.is_empty();
        let tls = ClientTls {
            level,
            policy_maps,
            protocols: Protocols::from_config(config, "smtp_tls_protocols")?,
            mandatory_protocols: Protocols::from_config(config, "smtp_tls_mandatory_protocols")?,
            exclude: excluded_cipher_fragments(
                "smtp_tls_exclude_ciphers",
                &config.get("smtp_tls_exclude_ciphers"),
            )?,
            mandatory_exclude: excluded_cipher_fragments(
                "smtp_tls_mandatory_exclude_ciphers",
                &config.get("smtp_tls_mandatory_exclude_ciphers"),
            )?,
            roots: Arc::new(roots),
            has_roots,
            verify_match: config.list("smtp_tls_verify_cert_match"),
            secure_match: config.list("smtp_tls_secure_cert_match"),
            fingerprint_digest: FingerprintDigest::from_config(config)?,
            fingerprints: fingerprint_cert_match(config)?,
            servername: config.get("smtp_tls_servername").trim().to_string(),
            sessions: Arc::new(ClientSessionMemoryCache::new(256)),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        if level == ClientLevel::Fingerprint && tls.fingerprints.is_empty() {
            return Err(ClientTlsError::Ca(
                "smtp_tls_security_level = fingerprint: no smtp_tls_fingerprint_cert_match \
                 fingerprints to accept"
                    .into(),
            ));
        }
        if level >= ClientLevel::Verify && !tls.has_roots {
            return Err(ClientTlsError::Ca(format!(
                "smtp_tls_security_level = {}: no trusted CA certificates \
                 (set smtp_tls_CAfile or smtp_tls_CApath, or install ca-certificates)",
                level.name()
            )));
        }
        Ok(tls)
    }

    /// Whether TLS can matter for any delivery: a level above none, or a
    /// policy table that may raise it.
    pub fn enabled(&self) -> bool {
        self.level > ClientLevel::None || !self.policy_maps.is_empty()
    }

    /// The policy for a next hop (`[host]:port`, `domain`, ...) whose
    /// domain or host is `domain`: smtp_tls_policy_maps is searched for the
    /// next hop as written, then the domain and its parent domains
    /// (`.example.com`); without an entry the global level applies.
    /// Err: an entry that cannot be used; the delivery is deferred.
    pub fn policy(&self, nexthop: &str, domain: &str) -> Result<Policy, String> {
        let mut keys = vec![nexthop.to_string(), domain.to_string()];
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            keys.push(format!(".{parent}"));
            rest = parent;
        }
        let entry = self.policy_maps.iter().find_map(|table| {
            if table.is_pattern_table() {
                table.lookup(nexthop)
            } else {
                keys.iter().find_map(|k| table.lookup(k))
            }
        });
        match entry {
            None => Ok(Policy {
                level: self.level,
                matches: self.default_matches(self.level),
                fingerprints: self.default_fingerprints(self.level),
                protocols: None,
                exclude: None,
            }),
            Some(value) => self
                .parse_policy(&value)
                .map_err(|e| format!("TLS policy lookup for {nexthop}: {e}")),
        }
    }

    fn default_matches(&self, level: ClientLevel) -> Vec<String> {
        match level {
            ClientLevel::Secure => self.secure_match.clone(),
            _ => self.verify_match.clone(),
        }
    }

    fn default_fingerprints(&self, level: ClientLevel) -> Vec<Vec<u8>> {
        match level {
            ClientLevel::Fingerprint => self.fingerprints.clone(),
            _ => Vec::new(),
        }
    }

    /// A policy table entry: `level [match=a:b] [protocols=...] [ciphers=grade] [exclude=...]`
    /// (at the fingerprint level `match=` lists fingerprints, separated by `|`).
    fn parse_policy(&self, value: &str) -> Result<Policy, String> {
        let value = value.trim();
        let value = value
            .strip_prefix('{')
            .and_then(|v| v.strip_suffix('}'))
            .unwrap_or(value);
        let mut words = value.split_whitespace();
        let level = ClientLevel::parse("smtp_tls_policy_maps", words.next().unwrap_or(""))
            .map_err(|e| e.to_string())?;
        if level >= ClientLevel::Verify && !self.has_roots {
            return Err(format!(
                "level {} needs trusted CA certificates (smtp_tls_CAfile)",
                level.name()
            ));
        }
        let mut policy = Policy {
            level,
            matches: self.default_matches(level),
            fingerprints: self.default_fingerprints(level),
            protocols: None,
            exclude: None,
        };
        for word in words {
            let (name, attr) = word
                .split_once('=')
                .ok_or_else(|| format!("malformed attribute \"{word}\""))?;
            match name.to_ascii_lowercase().as_str() {
                "match" if level == ClientLevel::Fingerprint => {
                    policy.fingerprints =
                        parse_fingerprints("match", attr.split('|')).map_err(|e| e.to_string())?;
                }
                "match" => policy.matches = attr.split(':').map(str::to_string).collect(),
                "protocols" => {
                    policy.protocols = Some(
                        Protocols::parse("protocols", &attr.replace(':', " "))
                            .map_err(|e| e.to_string())?,
                    );
                }
                "ciphers" => check_cipher_grade("ciphers", attr).map_err(|e| e.to_string())?,
                "exclude" => {
                    policy.exclude = Some(
                        excluded_cipher_fragments("exclude", &attr.replace(':', " "))
                            .map_err(|e| e.to_string())?,
                    );
                }
                other => {
                    return Err(format!(
                        "attribute \"{other}\" is not implemented by mailgate"
                    ));
                }
            }
        }
        if level == ClientLevel::Fingerprint && policy.fingerprints.is_empty() {
            return Err(
                "configured at fingerprint security level, but with no fingerprints \
                        to match"
                    .into(),
            );
        }
        Ok(policy)
    }

    /// The rustls setup for one connection under `policy`, to the server
    /// `hostname` for the next-hop domain `nexthop`.
    pub fn handshake(
        &self,
        policy: &Policy,
        hostname: &str,
        nexthop: &str,
    ) -> Result<Handshake, String> {
        let mandatory = policy.level >= ClientLevel::Encrypt;
        let protocols = policy.protocols.unwrap_or(if mandatory {
            self.mandatory_protocols
        } else {
            self.protocols
        });
        let exclude = policy.exclude.clone().unwrap_or_else(|| {
            if mandatory {
                self.mandatory_exclude.clone()
            } else {
                self.exclude.clone()
            }
        });
        let mut provider = (*self.provider).clone();
        provider.cipher_suites.retain(|suite| {
            let name = format!("{:?}", suite.suite());
            !exclude.iter().any(|fragment| name.contains(fragment))
        });
        if provider.cipher_suites.is_empty() {
            return Err("the cipher exclusions leave no cipher suite".into());
        }
        let mut versions = Vec::new();
        if protocols.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if protocols.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let findings = Arc::new(Mutex::new(Findings::default()));
        let names = match_names(&policy.matches, hostname, nexthop);
        let verifier = Arc::new(Recorder {
            roots: Arc::clone(&self.roots),
            algorithms: provider.signature_verification_algorithms,
            names,
            fingerprints: (policy.level == ClientLevel::Fingerprint)
                .then(|| Fingerprints::new(self.fingerprint_digest, policy.fingerprints.clone())),
            findings: Arc::clone(&findings),
        });
        let provider = Arc::new(provider);
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| format!("TLS protocols: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.resumption = Resumption::store(self.sessions.clone());
        let sni = match self.servername.as_str() {
            "" => None,
            "hostname" => Some(hostname),
            "nexthop" => Some(nexthop),
            literal => Some(literal),
        };
        config.enable_sni = sni.is_some();
        let server_name = ServerName::try_from(sni.unwrap_or(hostname).to_string())
            .or_else(|_| ServerName::try_from("invalid".to_string()))
            .map_err(|e| format!("server name: {e}"))?;
        Ok(Handshake {
            config: Arc::new(config),
            server_name,
            findings,
        })
    }
}

/// A client handshake outside SMTP (smtpd's IMAP login for AUTH): the
/// certificate is checked against `roots` and `hostname` and the result
/// recorded as for relay; the caller applies [`refusal`].
pub fn simple_handshake(roots: Arc<RootCertStore>, hostname: &str) -> Result<Handshake, String> {
    let provider = rustls::crypto::ring::default_provider();
    let findings = Arc::new(Mutex::new(Findings::default()));
    let verifier = Arc::new(Recorder {
        roots,
        algorithms: provider.signature_verification_algorithms,
        names: vec![Name::Exact(
            hostname.trim_end_matches('.').to_ascii_lowercase(),
        )],
        fingerprints: None,
        findings: Arc::clone(&findings),
    });
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocols: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let server_name =
        ServerName::try_from(hostname.to_string()).map_err(|e| format!("server name: {e}"))?;
    Ok(Handshake {
        config: Arc::new(config),
        server_name,
        findings,
    })
}

/// One way a certificate name may match.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Name {
    /// The name itself (wildcards in the certificate apply).
    Exact(String),
    /// Any name below this domain.
    Below(String),
}

fn match_names(strategies: &[String], hostname: &str, nexthop: &str) -> Vec<Name> {
    let lower = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
    strategies
        .iter()
        .map(|s| match s.as_str() {
            "hostname" => Name::Exact(lower(hostname)),
            "nexthop" => Name::Exact(lower(nexthop)),
            "dot-nexthop" => Name::Below(lower(nexthop)),
            other => match other.strip_prefix('.') {
                Some(parent) => Name::Below(lower(parent)),
                None => Name::Exact(lower(other)),
            },
        })
        .collect()
}

/// Whether the certificate is valid for a wanted name: an exact name (or
/// address) by rustls's own check (wildcards, IP addresses), a domain's
/// subdomains by the certificate's DNS names.
fn cert_matches(parsed: &ParsedCertificate<'_>, dns_names: &[String], wanted: &Name) -> bool {
    match wanted {
        Name::Exact(name) => ServerName::try_from(name.as_str())
            .is_ok_and(|sn| rustls::client::verify_server_name(parsed, &sn).is_ok()),
        Name::Below(parent) => dns_names.iter().any(|n| below(n, parent)),
    }
}

/// Whether a certificate's DNS name (possibly `*.example.com`) names only
/// names below `parent`.
fn below(cert_name: &str, parent: &str) -> bool {
    let cert_name = cert_name.trim_end_matches('.').to_ascii_lowercase();
    let strictly_below = |name: &str| {
        name.len() > parent.len() + 1
            && name.ends_with(parent)
            && name.as_bytes()[name.len() - parent.len() - 1] == b'.'
    };
    match cert_name.strip_prefix("*.") {
        Some(base) => base == parent || strictly_below(base),
        None => strictly_below(&cert_name),
    }
}

/// Checks the server's certificate and records the result. It never fails
/// the handshake for the certificate itself (relay decides afterwards, as
/// Postfix does); the handshake signature is always verified.
#[derive(Debug)]
struct Recorder {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    names: Vec<Name>,
    /// At the fingerprint level: what is accepted instead of a CA and names.
    fingerprints: Option<Fingerprints>,
    findings: Arc<Mutex<Findings>>,
}

impl Recorder {
    fn record(&self, f: impl FnOnce(&mut Findings)) {
        f(&mut self
            .findings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(fingerprints) = &self.fingerprints {
            let accepted = fingerprints.accept(end_entity);
            self.record(|f| {
                f.trust = Some(if accepted {
                    Trust::Verified
                } else {
                    Trust::Untrusted
                });
                f.problem = (!accepted).then(|| "certificate fingerprint does not match".into());
            });
            return Ok(ServerCertVerified::assertion());
        }
        let (trust, problem) = match ParsedCertificate::try_from(end_entity) {
            Err(e) => (
                Trust::Untrusted,
                Some(format!("unparsable certificate: {e}")),
            ),
            Ok(parsed) => {
                let chain = if self.roots.is_empty() {
                    Err(Error::General("no trusted CA certificates".into()))
                } else {
                    rustls::client::verify_server_cert_signed_by_trust_anchor(
                        &parsed,
                        &self.roots,
                        intermediates,
                        now,
                        self.algorithms.all,
                    )
                };
                match chain {
                    Err(e) => (Trust::Untrusted, Some(format!("untrusted issuer: {e}"))),
                    Ok(()) => {
                        let cert_names: Vec<String> = webpki::EndEntityCert::try_from(end_entity)
                            .map(|c| c.valid_dns_names().map(str::to_string).collect())
                            .unwrap_or_default();
                        let matched = self
                            .names
                            .iter()
                            .any(|want| cert_matches(&parsed, &cert_names, want));
                        if matched {
                            (Trust::Verified, None)
                        } else {
                            (
                                Trust::Trusted,
                                Some(format!(
                                    "certificate names [{}] do not match {}",
                                    cert_names.join(", "),
                                    self.names
                                        .iter()
                                        .map(|n| match n {
                                            Name::Exact(n) => n.clone(),
                                            Name::Below(n) => format!(".{n}"),
                                        })
                                        .collect::<Vec<_>>()
                                        .join(" or ")
                                )),
                            )
                        }
                    }
                }
            }
        };
        self.record(|f| {
            f.trust = Some(trust);
            f.problem = problem;
        });
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let valid = rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)?;
        self.record(|f| f.server_signature = Some(Signature::from_scheme(dss.scheme, None)));
        Ok(valid)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a level demands of what the handshake found: None when the
/// connection may carry mail, or Postfix's reason for refusing it.
pub fn refusal(level: ClientLevel, findings: &Findings) -> Option<&'static str> {
    let trust = findings.trust.unwrap_or(Trust::Untrusted);
    match level {
        ClientLevel::Verify | ClientLevel::Secure if trust == Trust::Untrusted => {
            Some("Server certificate not trusted")
        }
        ClientLevel::Fingerprint | ClientLevel::Verify | ClientLevel::Secure
            if trust != Trust::Verified =>
        {
            Some("Server certificate not verified")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_name_matching() {
        assert!(below("mx.example.com", "example.com"));
        assert!(below("MX.Example.COM.", "example.com"));
        assert!(below("*.example.com", "example.com"));
        assert!(below("*.mx.example.com", "example.com"));
        assert!(!below("example.com", "example.com"));
        assert!(!below("badexample.com", "example.com"));
        assert!(!below("*.com", "example.com"));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["*.example.com".into(), "192.0.2.1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let parsed = ParsedCertificate::try_from(cert.der()).unwrap();
        let exact = |n: &str| Name::Exact(n.into());
        assert!(cert_matches(&parsed, &[], &exact("mx.example.com")));
        assert!(!cert_matches(&parsed, &[], &exact("a.mx.example.com")));
        assert!(cert_matches(&parsed, &[], &exact("192.0.2.1")));
        assert!(!cert_matches(&parsed, &[], &exact("192.0.2.2")));
        assert_eq!(
            match_names(
                &[
                    "hostname".into(),
                    "dot-nexthop".into(),
                    ".example.net".into()
                ],
                "MX.example.com.",
                "example.com"
            ),
            vec![
                Name::Exact("mx.example.com".into()),
                Name::Below("example.com".into()),
                Name::Below("example.net".into())
            ]
        );
    }

    #[test]
    fn levels_demand_trust_and_names() {
        let found = |trust| Findings {
            trust: Some(trust),
            ..Findings::default()
        };
        assert_eq!(
            refusal(ClientLevel::Encrypt, &found(Trust::Untrusted)),
            None
        );
        assert_eq!(
            refusal(ClientLevel::Verify, &found(Trust::Untrusted)),
            Some("Server certificate not trusted")
        );
        assert_eq!(
            refusal(ClientLevel::Secure, &found(Trust::Trusted)),
            Some("Server certificate not verified")
        );
        assert_eq!(refusal(ClientLevel::Verify, &found(Trust::Verified)), None);
        assert_eq!(
            refusal(ClientLevel::Verify, &Findings::default()),
            Some("Server certificate not trusted")
        );
    }

    #[test]
    fn policy_table_entries() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ca.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&ca, cert.pem()).unwrap();
        let config = MainConfig::parse(
            &format!(
                "smtp_tls_CAfile = {}\nsmtp_tls_security_level = may\n\
                 smtp_tls_policy_maps = inline:{{ example.com=secure, \
                 [10.0.0.1]:587={{encrypt protocols=>=TLSv1.3}}, \
                 .example.net={{verify match=hostname:nexthop}}, bad.example={{dane}}, \
                 odd.example={{encrypt tafile=/x}}, \
                 inside.example={{fingerprint match=AB:cd:01|ef0102}}, \
                 nofp.example=fingerprint, badfp.example={{fingerprint match=XY}} }}\n",
                ca.display()
            ),
            &dir.path().join("main.cf"),
            dir.path(),
            &[],
        )
        .unwrap();
        let tls = ClientTls::load(&config).unwrap();
        assert!(tls.enabled());
        assert_eq!(
            tls.policy("gmail.com", "gmail.com").unwrap().level,
            ClientLevel::May
        );
        let secure = tls.policy("example.com", "example.com").unwrap();
        assert_eq!(secure.level, ClientLevel::Secure);
        assert_eq!(secure.matches, ["nexthop", "dot-nexthop"]);
        let encrypt = tls.policy("[10.0.0.1]:587", "10.0.0.1").unwrap();
        assert_eq!(encrypt.level, ClientLevel::Encrypt);
        assert_eq!(
            encrypt.protocols,
            Some(Protocols {
                tls12: false,
                tls13: true
            })
        );
        let verify = tls
            .policy("mx.sub.example.net", "mx.sub.example.net")
            .unwrap();
        assert_eq!(verify.level, ClientLevel::Verify);
        assert_eq!(verify.matches, ["hostname", "nexthop"]);
        assert!(
            tls.policy("bad.example", "bad.example")
                .unwrap_err()
                .contains("DANE")
        );
        assert!(
            tls.policy("odd.example", "odd.example")
                .unwrap_err()
                .contains("tafile")
        );
        // Fingerprints: `|`-separated, colons optional, any case; none at
        // all (no smtp_tls_fingerprint_cert_match either) or a malformed
        // one defers the delivery.
        let fp = tls.policy("inside.example", "inside.example").unwrap();
        assert_eq!(fp.level, ClientLevel::Fingerprint);
        assert_eq!(
            fp.fingerprints,
            [vec![0xab, 0xcd, 0x01], vec![0xef, 0x01, 0x02]]
        );
        assert!(
            tls.policy("nofp.example", "nofp.example")
                .unwrap_err()
                .contains("no fingerprints")
        );
        assert!(tls.policy("badfp.example", "badfp.example").is_err());
    }
}
