//! The TLS parameters, parsed here (not in the services) so that `mailgate
//! check`, smtpd, relay and tlskeys give the same answer: security levels,
//! protocol and cipher lists, and which certificate and key files a service
//! uses. A value mailgate does not implement is an error, never ignored:
//! every one of these decides how mail is protected.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::main_cf::MainConfig;

/// smtpd_tls_security_level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerLevel {
    None,
    /// STARTTLS offered, not required.
    May,
    /// No mail without TLS (STARTTLS or wrapper mode).
    Encrypt,
}

/// smtp_tls_security_level, or a policy table's level for one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientLevel {
    None,
    /// STARTTLS when offered; any certificate.
    May,
    /// TLS required; any certificate.
    Encrypt,
    /// TLS required; the certificate's (or its public key's) digest must be
    /// one of the configured fingerprints. No CA is asked.
    Fingerprint,
    /// TLS required; the certificate must be trusted and match the MX host name.
    Verify,
    /// TLS required; the certificate must be trusted and match the next-hop
    /// domain (not names from insecure DNS).
    Secure,
}

/// Why a TLS parameter cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsConfigError {
    Invalid {
        parameter: String,
        value: String,
        expected: &'static str,
    },
    /// A value Postfix knows that mailgate does not implement.
    Unsupported {
        parameter: String,
        value: String,
        why: &'static str,
    },
    /// Keys without certificates or the other way round.
    Pairing { parameter: String, why: String },
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Invalid {
                parameter,
                value,
                expected,
            } => write!(f, "{parameter} = {value}: expected {expected}"),
            TlsConfigError::Unsupported {
                parameter,
                value,
                why,
            } => write!(
                f,
                "{parameter} = {value}: not implemented by mailgate ({why})"
            ),
            TlsConfigError::Pairing { parameter, why } => write!(f, "{parameter}: {why}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

fn invalid(parameter: &str, value: &str, expected: &'static str) -> TlsConfigError {
    TlsConfigError::Invalid {
        parameter: parameter.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn unsupported(parameter: &str, value: &str, why: &'static str) -> TlsConfigError {
    TlsConfigError::Unsupported {
        parameter: parameter.to_string(),
        value: value.to_string(),
        why,
    }
}

impl ServerLevel {
    /// smtpd_tls_security_level, or when it is empty the older
    /// smtpd_enforce_tls and smtpd_use_tls (as Postfix reads them).
    pub fn from_config(config: &MainConfig) -> Result<ServerLevel, TlsConfigError> {
        let value = config.get("smtpd_tls_security_level");
        match value.trim().to_ascii_lowercase().as_str() {
            "" if config.bool("smtpd_enforce_tls") => Ok(ServerLevel::Encrypt),
            "" if config.bool("smtpd_use_tls") => Ok(ServerLevel::May),
            "" | "none" => Ok(ServerLevel::None),
            "may" => Ok(ServerLevel::May),
            "encrypt" => Ok(ServerLevel::Encrypt),
            _ => Err(invalid(
                "smtpd_tls_security_level",
                &value,
                "none, may or encrypt",
            )),
        }
    }
}

impl ClientLevel {
    /// A level name as main.cf or a policy table writes it.
    pub fn parse(parameter: &str, value: &str) -> Result<ClientLevel, TlsConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(ClientLevel::None),
            "may" => Ok(ClientLevel::May),
            "encrypt" => Ok(ClientLevel::Encrypt),
            "verify" => Ok(ClientLevel::Verify),
            "secure" => Ok(ClientLevel::Secure),
            "dane" | "dane-only" | "half-dane" => Err(unsupported(
                parameter,
                value,
                "DANE is not implemented; use verify or secure",
            )),
            "fingerprint" => Ok(ClientLevel::Fingerprint),
            _ => Err(invalid(
                parameter,
                value,
                "none, may, encrypt, fingerprint, verify or secure",
            )),
        }
    }

    /// smtp_tls_security_level, or when it is empty smtp_enforce_tls and
    /// smtp_use_tls.
    pub fn from_config(config: &MainConfig) -> Result<ClientLevel, TlsConfigError> {
        let value = config.get("smtp_tls_security_level");
        if value.trim().is_empty() {
            return Ok(if config.bool("smtp_enforce_tls") {
                if config.bool("smtp_tls_enforce_peername") {
                    ClientLevel::Verify
                } else {
                    ClientLevel::Encrypt
                }
            } else if config.bool("smtp_use_tls") {
                ClientLevel::May
            } else {
                ClientLevel::None
            });
        }
        ClientLevel::parse("smtp_tls_security_level", &value)
    }

    /// Whether a message may go out without TLS at this level.
    pub fn requires_tls(self) -> bool {
        self >= ClientLevel::Encrypt
    }

    pub fn name(self) -> &'static str {
        match self {
            ClientLevel::None => "none",
            ClientLevel::May => "may",
            ClientLevel::Encrypt => "encrypt",
            ClientLevel::Fingerprint => "fingerprint",
            ClientLevel::Verify => "verify",
            ClientLevel::Secure => "secure",
        }
    }
}

/// smtp_tls_fingerprint_digest: the digest certificate fingerprints are
/// taken with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FingerprintDigest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl FingerprintDigest {
    pub fn from_config(config: &MainConfig) -> Result<FingerprintDigest, TlsConfigError> {
        let parameter = "smtp_tls_fingerprint_digest";
        let value = config.get(parameter);
        match value.trim().to_ascii_lowercase().as_str() {
            "sha1" => Ok(FingerprintDigest::Sha1),
            "sha256" => Ok(FingerprintDigest::Sha256),
            "sha384" => Ok(FingerprintDigest::Sha384),
            "sha512" => Ok(FingerprintDigest::Sha512),
            "md5" => Err(unsupported(
                parameter,
                &value,
                "MD5 fingerprints are not computed (broken digest); use sha256",
            )),
            _ => Err(invalid(parameter, &value, "sha256, sha384, sha512 or sha1")),
        }
    }
}

/// Fingerprints as Postfix reads them: hex, the byte pairs optionally
/// separated by colons, any case. Err names the malformed one.
pub fn parse_fingerprints<'a>(
    parameter: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Vec<u8>>, TlsConfigError> {
    let mut out = Vec::new();
    for value in values {
        let hex: String = value.chars().filter(|&c| c != ':').collect();
        let bytes = (hex.len().is_multiple_of(2) && !hex.is_empty() && hex.len() <= 128)
            .then(|| {
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()
            })
            .flatten()
            .ok_or_else(|| invalid(parameter, value, "hex fingerprints such as AB:CD:..."))?;
        out.push(bytes);
    }
    Ok(out)
}

/// smtp_tls_fingerprint_cert_match, decoded.
pub fn fingerprint_cert_match(config: &MainConfig) -> Result<Vec<Vec<u8>>, TlsConfigError> {
    let parameter = "smtp_tls_fingerprint_cert_match";
    parse_fingerprints(parameter, config.list(parameter).iter().map(String::as_str))
}

/// The TLS versions mailgate can speak (rustls has nothing older).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocols {
    pub tls12: bool,
    pub tls13: bool,
}

const PROTOCOL_NAMES: [&str; 6] = ["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

impl Protocols {
    /// Postfix's protocol list: `>=TLSv1.2`, `<=TLSv1.3`, exclusions
    /// (`!SSLv2, !SSLv3`) or the protocols to use (`TLSv1.2 TLSv1.3`).
    /// Versions before TLS 1.2 are never spoken, whatever the list says;
    /// a list that leaves neither TLS 1.2 nor 1.3 is an error.
    pub fn parse(parameter: &str, value: &str) -> Result<Protocols, TlsConfigError> {
        let expected = "a list of SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, \
                        each optionally with !, or >=VERSION / <=VERSION";
        let index = |name: &str| {
            PROTOCOL_NAMES
                .iter()
                .position(|p| p.eq_ignore_ascii_case(name))
                .ok_or_else(|| invalid(parameter, value, expected))
        };
        let mut enabled = [true; 6];
        let mut included: Option<[bool; 6]> = None;
        for item in crate::lines::split_list(value) {
            if let Some(v) = item.strip_prefix(">=") {
                let floor = index(v)?;
                enabled.iter_mut().take(floor).for_each(|e| *e = false);
            } else if let Some(v) = item.strip_prefix("<=") {
                let ceiling = index(v)?;
                enabled
                    .iter_mut()
                    .skip(ceiling + 1)
                    .for_each(|e| *e = false);
            } else if let Some(v) = item.strip_prefix('!') {
                enabled[index(v)?] = false;
            } else {
                included.get_or_insert([false; 6])[index(&item)?] = true;
            }
        }
        if let Some(included) = included {
            for (e, i) in enabled.iter_mut().zip(included) {
                *e &= i;
            }
        }
        let protocols = Protocols {
            tls12: enabled[4],
            tls13: enabled[5],
        };
        if !protocols.tls12 && !protocols.tls13 {
            return Err(unsupported(
                parameter,
                value,
                "mailgate speaks only TLSv1.2 and TLSv1.3, and this list excludes both",
            ));
        }
        Ok(protocols)
    }

    pub fn from_config(config: &MainConfig, parameter: &str) -> Result<Protocols, TlsConfigError> {
        Protocols::parse(parameter, &config.get(parameter))
    }
}

/// Checks a cipher grade (smtpd_tls_ciphers and the like). Every cipher
/// suite mailgate offers is of Postfix's "high" grade (AEAD, forward
/// secrecy), so export, low, medium and high all mean "the suites mailgate
/// has"; null (no encryption) is not offered.
pub fn check_cipher_grade(parameter: &str, value: &str) -> Result<(), TlsConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "export" | "low" | "medium" | "high" => Ok(()),
        "null" => Err(unsupported(
            parameter,
            value,
            "cipher suites without encryption are never offered",
        )),
        _ => Err(invalid(
            parameter,
            value,
            "export, low, medium, high or null",
        )),
    }
}

/// OpenSSL cipher names in exclusion lists (smtpd_tls_exclude_ciphers and
/// the like) that name nothing mailgate would ever negotiate: excluding them
/// is already true.
const ABSENT_CIPHERS: &[&str] = &[
    "aNULL",
    "eNULL",
    "NULL",
    "EXPORT",
    "EXP",
    "LOW",
    "RC4",
    "MD5",
    "DES",
    "3DES",
    "DES-CBC3-SHA",
    "SEED",
    "IDEA",
    "RC2",
    "CAMELLIA",
    "ARIA",
    "PSK",
    "aPSK",
    "SRP",
    "kRSA",
    "RSA",
    "DSS",
    "aDSS",
    "ADH",
    "AECDH",
    "kDHE",
    "DHE",
    "EDH",
    "kEDH",
    "aECDH",
    "kECDH",
    "SHA1",
    "SHA",
    "CBC",
    "DH",
    "aDH",
    "kDH",
    "KRB5",
    "GOST",
    "aGOST",
    "AESCCM",
    "AESCCM8",
    "CCM",
];

/// Cipher names mailgate does have, and the suites they exclude (by the
/// IANA names rustls uses).
const PRESENT_CIPHERS: &[(&str, &[&str])] = &[
    ("AES128", &["AES_128"]),
    ("AES256", &["AES_256"]),
    ("AESGCM", &["AES_128_GCM", "AES_256_GCM"]),
    ("CHACHA20", &["CHACHA20"]),
    ("ECDSA", &["ECDSA"]),
    ("aECDSA", &["ECDSA"]),
    ("aRSA", &["_RSA_"]),
    ("SHA384", &["SHA384"]),
    (
        "SHA256",
        &["AES_128_GCM_SHA256", "CHACHA20_POLY1305_SHA256"],
    ),
];

/// An exclusion list's effect: the fragments of suite names to drop.
/// A name mailgate cannot map is an error rather than a silent no-op.
pub fn excluded_cipher_fragments(
    parameter: &str,
    value: &str,
) -> Result<Vec<&'static str>, TlsConfigError> {
    let mut fragments = Vec::new();
    for item in crate::lines::split_list(value) {
        let name = item.trim_start_matches(['!', '-', '+']);
        if ABSENT_CIPHERS.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            continue;
        }
        match PRESENT_CIPHERS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, f)) => fragments.extend_from_slice(f),
            None => {
                return Err(unsupported(
                    parameter,
                    &item,
                    "an OpenSSL cipher name mailgate cannot map to its cipher suites",
                ));
            }
        }
    }
    Ok(fragments)
}

/// Which end of a connection a set of key files is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// smtpd_tls_*: the server's certificates.
    Server,
    /// smtp_tls_*: relay's client certificates.
    Client,
}

impl Side {
    fn prefix(self) -> &'static str {
        match self {
            Side::Server => "smtpd",
            Side::Client => "smtp",
        }
    }
}

/// One private key and its certificate chain, as files. In a chain file
/// (`*_tls_chain_files`) keys and certificates are in the same file, each
/// key followed by its certificates; `key == cert` then.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeySource {
    pub key: PathBuf,
    pub cert: PathBuf,
    /// Whether the file holds several keys, each followed by its chain.
    pub chain_file: bool,
}

/// The key and certificate files a configuration names for one side, in
/// Postfix's order of precedence: `*_tls_chain_files` when set, otherwise
/// the RSA pair (`*_tls_cert_file`/`*_tls_key_file`) and the ECDSA pair
/// (`*_tls_eccert_file`/`*_tls_eckey_file`). Relative paths are taken
/// from the configuration directory.
pub fn key_sources(config: &MainConfig, side: Side) -> Result<Vec<KeySource>, TlsConfigError> {
    let p = side.prefix();
    let path = |name: &str| -> Option<PathBuf> {
        let value = config.get(name);
        let value = value.trim();
        (!value.is_empty()).then(|| absolute(config.config_dir(), value))
    };
    for dsa in ["dcert_file", "dkey_file"] {
        let name = format!("{p}_tls_{dsa}");
        if path(&name).is_some() {
            return Err(unsupported(
                &name,
                &config.get(&name),
                "DSA keys are obsolete and not supported; use RSA or ECDSA",
            ));
        }
    }
    let chain_files = config.list(&format!("{p}_tls_chain_files"));
    if !chain_files.is_empty() {
        return Ok(chain_files
            .iter()
            .map(|f| {
                let f = absolute(config.config_dir(), f);
                KeySource {
                    key: f.clone(),
                    cert: f,
                    chain_file: true,
                }
            })
            .collect());
    }
    let mut sources = Vec::new();
    for (cert, key) in [("cert_file", "key_file"), ("eccert_file", "eckey_file")] {
        let cert_name = format!("{p}_tls_{cert}");
        let key_name = format!("{p}_tls_{key}");
        match (path(&cert_name), path(&key_name)) {
            (Some(cert), Some(key)) => sources.push(KeySource {
                key,
                cert,
                chain_file: false,
            }),
            (None, None) => {}
            (Some(_), None) => {
                return Err(TlsConfigError::Pairing {
                    parameter: key_name,
                    why: format!("{cert_name} is set but there is no key file"),
                });
            }
            (None, Some(_)) => {
                return Err(TlsConfigError::Pairing {
                    parameter: cert_name,
                    why: format!("{key_name} is set but there is no certificate file"),
                });
            }
        }
    }
    Ok(sources)
}

fn absolute(dir: &Path, value: &str) -> PathBuf {
    let path = Path::new(value);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> MainConfig {
        MainConfig::parse(
            text,
            Path::new("/etc/mg/main.cf"),
            Path::new("/etc/mg"),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn levels_and_their_legacy_forms() {
        assert_eq!(
            ServerLevel::from_config(&config("")).unwrap(),
            ServerLevel::None
        );
        assert_eq!(
            ServerLevel::from_config(&config("smtpd_use_tls = yes\n")).unwrap(),
            ServerLevel::May
        );
        assert_eq!(
            ServerLevel::from_config(&config("smtpd_enforce_tls = yes\n")).unwrap(),
            ServerLevel::Encrypt
        );
        assert_eq!(
            ServerLevel::from_config(&config("smtpd_tls_security_level = Encrypt\n")).unwrap(),
            ServerLevel::Encrypt
        );
        assert!(ServerLevel::from_config(&config("smtpd_tls_security_level = verify\n")).is_err());
        assert_eq!(
            ClientLevel::from_config(&config("smtp_use_tls = yes\n")).unwrap(),
            ClientLevel::May
        );
        assert_eq!(
            ClientLevel::from_config(&config("smtp_tls_security_level = secure\n")).unwrap(),
            ClientLevel::Secure
        );
        let e = ClientLevel::from_config(&config("smtp_tls_security_level = dane\n")).unwrap_err();
        assert!(e.to_string().contains("not implemented"), "{e}");
        assert!(ClientLevel::Encrypt.requires_tls() && !ClientLevel::May.requires_tls());
        // fingerprint: TLS required, no CA asked (below verify).
        let fp = ClientLevel::from_config(&config("smtp_tls_security_level = fingerprint\n"));
        assert_eq!(fp.unwrap(), ClientLevel::Fingerprint);
        assert!(ClientLevel::Fingerprint.requires_tls());
        assert!(ClientLevel::Fingerprint < ClientLevel::Verify);
    }

    #[test]
    fn fingerprints_and_their_digest() {
        let digest = |v: &str| {
            FingerprintDigest::from_config(&config(&format!("smtp_tls_fingerprint_digest = {v}\n")))
        };
        assert_eq!(digest("SHA256").unwrap(), FingerprintDigest::Sha256);
        assert_eq!(digest("sha1").unwrap(), FingerprintDigest::Sha1);
        let md5 = digest("md5").unwrap_err().to_string();
        assert!(md5.contains("MD5"), "{md5}");
        assert!(digest("crc32").is_err());
        let prints = fingerprint_cert_match(&config(
            "smtp_tls_fingerprint_cert_match = AB:CD:EF, 0a0b0c\n",
        ))
        .unwrap();
        assert_eq!(prints, [vec![0xab, 0xcd, 0xef], vec![0x0a, 0x0b, 0x0c]]);
        for bad in ["AB:C", "XY:ZZ", ":", "ABC"] {
            assert!(parse_fingerprints("match", [bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn protocol_lists_in_postfix_syntax() {
        let p = |v| Protocols::parse("smtpd_tls_protocols", v);
        let both = Protocols {
            tls12: true,
            tls13: true,
        };
        assert_eq!(p("").unwrap(), both);
        assert_eq!(p("!SSLv2, !SSLv3").unwrap(), both);
        assert_eq!(p(">=TLSv1.2").unwrap(), both);
        assert_eq!(
            p(">=TLSv1.3").unwrap(),
            Protocols {
                tls12: false,
                tls13: true
            }
        );
        assert_eq!(
            p("!TLSv1.3").unwrap(),
            Protocols {
                tls12: true,
                tls13: false
            }
        );
        assert_eq!(
            p("TLSv1.2").unwrap(),
            Protocols {
                tls12: true,
                tls13: false
            }
        );
        assert_eq!(
            p("<=TLSv1.2").unwrap(),
            Protocols {
                tls12: true,
                tls13: false
            }
        );
        assert!(p("<=TLSv1.1").is_err());
        assert!(p("!TLSv1.2 !TLSv1.3").is_err());
        assert!(p("TLSv9").is_err());
    }

    #[test]
    fn ciphers() {
        assert!(check_cipher_grade("smtpd_tls_ciphers", "medium").is_ok());
        assert!(check_cipher_grade("smtpd_tls_ciphers", "null").is_err());
        assert!(check_cipher_grade("smtpd_tls_ciphers", "strong").is_err());
        assert_eq!(
            excluded_cipher_fragments("x", "aNULL, eNULL, RC4, MD5, 3DES").unwrap(),
            Vec::<&str>::new()
        );
        assert_eq!(
            excluded_cipher_fragments("x", "CHACHA20").unwrap(),
            vec!["CHACHA20"]
        );
        assert!(excluded_cipher_fragments("x", "kGOSTR341").is_err());
    }

    #[test]
    fn key_files_by_precedence() {
        let c = config(
            "smtpd_tls_cert_file = cert.pem\nsmtpd_tls_eccert_file = /k/ec.pem\nsmtpd_tls_eckey_file = /k/ec.key\n",
        );
        let s = key_sources(&c, Side::Server).unwrap();
        assert_eq!(s.len(), 2);
        // The key file defaults to the certificate file.
        assert_eq!(s[0].key, PathBuf::from("/etc/mg/cert.pem"));
        assert_eq!(s[0].cert, PathBuf::from("/etc/mg/cert.pem"));
        assert_eq!(s[1].key, PathBuf::from("/k/ec.key"));
        let c = config("smtpd_tls_chain_files = /k/rsa.pem, /k/ec.pem\nsmtpd_tls_cert_file = x\n");
        let s = key_sources(&c, Side::Server).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|s| s.chain_file));
        assert!(key_sources(&c, Side::Client).unwrap().is_empty());
        let c = config("smtp_tls_key_file = /k/x.key\n");
        assert!(key_sources(&c, Side::Client).is_err());
        let c = config("smtpd_tls_dcert_file = /k/dsa.pem\n");
        assert!(key_sources(&c, Side::Server).is_err());
    }
}
