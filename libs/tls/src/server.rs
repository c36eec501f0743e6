//! Inbound TLS for smtpd: what main.cf asks for (smtpd_tls_*), and the
//! rustls server configuration built from the certificate chains tlskeys
//! serves. smtpd never reads a key file: its certificates come over the
//! tlskeys socket, and every handshake signature is made there.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailgate_config::{
    MainConfig, Protocols, ServerLevel, Side, TlsConfigError, check_cipher_grade,
    excluded_cipher_fragments, key_sources,
};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SignatureScheme};

use crate::protocol::Source;
use crate::remote::{Described, KeyClient};
use crate::summary::Signature;

#[derive(Debug)]
pub enum ServerTlsError {
    Config(TlsConfigError),
    /// A level above none, or wrapper mode, without certificate files.
    NoCertificate,
    Unsupported {
        parameter: &'static str,
        why: &'static str,
    },
}

impl fmt::Display for ServerTlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerTlsError::Config(e) => write!(f, "{e}"),
            ServerTlsError::NoCertificate => write!(
                f,
                "smtpd_tls_security_level (or smtpd_tls_wrappermode) asks for TLS, but no \
                 certificate is configured (smtpd_tls_cert_file, smtpd_tls_eccert_file or \
                 smtpd_tls_chain_files)"
            ),
            ServerTlsError::Unsupported { parameter, why } => {
                write!(f, "{parameter}: not implemented by mailgate ({why})")
            }
        }
    }
}

impl std::error::Error for ServerTlsError {}

impl From<TlsConfigError> for ServerTlsError {
    fn from(e: TlsConfigError) -> Self {
        ServerTlsError::Config(e)
    }
}

/// smtpd's TLS settings, read at start-up.
pub struct ServerTls {
    pub level: ServerLevel,
    /// smtpd_tls_wrappermode: TLS from the first byte (SMTPS, port 465).
    pub wrapper: bool,
    /// smtpd_tls_auth_only: AUTH only over TLS.
    pub auth_only: bool,
    /// smtpd_tls_received_header.
    pub received_header: bool,
    pub handshake_timeout: Duration,
    sources: Vec<Source>,
    protocols: Protocols,
    exclude: Vec<&'static str>,
    keys: Arc<KeyClient>,
    /// Built at the first handshake (tlskeys may start after smtpd) and
    /// kept for the life of the process.
    config: Mutex<Option<(Arc<ServerConfig>, Arc<Keys>)>>,
}

impl ServerTls {
    /// None when the configuration asks for no TLS at all.
    pub fn load(
        config: &MainConfig,
        keys_socket: PathBuf,
    ) -> Result<Option<ServerTls>, ServerTlsError> {
        let level = ServerLevel::from_config(config)?;
        let wrapper = config.bool("smtpd_tls_wrappermode");
        for (parameter, why) in [
            (
                "smtpd_tls_ask_ccert",
                "client certificates are not requested",
            ),
            (
                "smtpd_tls_req_ccert",
                "client certificates are not requested",
            ),
        ] {
            if config.bool(parameter) {
                return Err(ServerTlsError::Unsupported { parameter, why });
            }
        }
        if level == ServerLevel::None && !wrapper {
            return Ok(None);
        }
        let sources: Vec<Source> = key_sources(config, Side::Server)?
            .iter()
            .map(|s| Source::new(Side::Server, s))
            .collect();
        if sources.is_empty() {
            return Err(ServerTlsError::NoCertificate);
        }
        let mandatory = level == ServerLevel::Encrypt || wrapper;
        let (protocols, ciphers, exclude) = if mandatory {
            (
                "smtpd_tls_mandatory_protocols",
                "smtpd_tls_mandatory_ciphers",
                "smtpd_tls_mandatory_exclude_ciphers",
            )
        } else {
            (
                "smtpd_tls_protocols",
                "smtpd_tls_ciphers",
                "smtpd_tls_exclude_ciphers",
            )
        };
        check_cipher_grade(ciphers, &config.get(ciphers))?;
        Ok(Some(ServerTls {
            level,
            wrapper,
            auth_only: config.bool("smtpd_tls_auth_only"),
            received_header: config.bool("smtpd_tls_received_header"),
            handshake_timeout: config.time("smtpd_starttls_timeout"),
            sources,
            protocols: Protocols::from_config(config, protocols)?,
            exclude: excluded_cipher_fragments(exclude, &config.get(exclude))?,
            keys: KeyClient::new(keys_socket, config.time("tlskeys_timeout")),
            config: Mutex::new(None),
        }))
    }

    /// The rustls configuration, asking tlskeys for the certificates the
    /// first time. Err: TLS cannot be offered now (tlskeys unreachable or
    /// without these certificates); the next call tries again.
    pub fn config(&self) -> Result<(Arc<ServerConfig>, Arc<Keys>), String> {
        let mut cached = self
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(built) = cached.as_ref() {
            return Ok(built.clone());
        }
        let certified = self.keys.certified_keys(self.sources.clone())?;
        if certified.is_empty() {
            return Err("tlskeys has no certificate for smtpd".into());
        }
        let keys = Arc::new(Keys(certified));
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites.retain(|suite| {
            let name = format!("{:?}", suite.suite());
            !self.exclude.iter().any(|fragment| name.contains(fragment))
        });
        let mut versions = Vec::new();
        if self.protocols.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if self.protocols.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&versions)
            .map_err(|e| format!("TLS protocols: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(keys.clone());
        // Session resumption: a session cache for TLS 1.2 and session
        // tickets (their keys rotate every 6 hours, and live only in this
        // process's memory, like Postfix's tlsmgr keys).
        config.session_storage = ServerSessionMemoryCache::new(1024);
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| format!("session tickets: {e}"))?;
        let built = (Arc::new(config), keys);
        *cached = Some(built.clone());
        Ok(built)
    }
}

/// The certificates smtpd serves (one per key type), chosen per client by
/// the signature schemes it offers.
#[derive(Debug)]
pub struct Keys(Vec<Described>);

impl Keys {
    fn choose(&self, offered: &[SignatureScheme]) -> Option<&Described> {
        self.0
            .iter()
            .find(|(k, _)| k.key.choose_scheme(offered).is_some())
    }

    /// The signature the handshake with a client offering these schemes
    /// makes, as the log line and the Received header name it.
    pub fn signature(&self, offered: &[SignatureScheme]) -> Option<Signature> {
        let (key, detail) = self.choose(offered)?;
        let scheme = key.key.choose_scheme(offered)?.scheme();
        Some(Signature::from_scheme(scheme, detail.clone()))
    }
}

impl ResolvesServerCert for Keys {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(client_hello.signature_schemes())
            .map(|(k, _)| k.clone())
    }
}
