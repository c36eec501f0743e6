//! `mailgate dkim keygen DOMAIN SELECTOR`: a DKIM key pair, as
//! opendkim-genkey makes it. The private key is written (mode 600) for
//! dkim_key_table; the DNS TXT record to publish is printed on stdout.
//! The keys are made by openssl (RSA: ring cannot generate RSA keys), never
//! by code of ours.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum DkimCmd {
    /// Make a key pair for DOMAIN and SELECTOR: writes the private key to
    /// DIRECTORY/SELECTOR.DOMAIN.pem (mode 600; it must not exist) and
    /// prints the TXT record to publish at SELECTOR._domainkey.DOMAIN, in
    /// zone-file form, split in strings of at most 255 bytes.
    Keygen {
        domain: String,
        selector: String,
        /// The key type: rsa (2048 bits unless --bits) or ed25519 (RFC 8463;
        /// not every verifier knows it yet).
        #[arg(short = 't', long = "type", value_enum, default_value = "rsa")]
        kind: KeyKind,
        /// RSA key size.
        #[arg(short = 'b', long, default_value_t = 2048)]
        bits: u32,
        /// Where to write the private key.
        #[arg(short = 'D', long, default_value = ".")]
        directory: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    Rsa,
    Ed25519,
}

#[derive(Debug)]
pub enum DkimCmdError {
    BadName(String),
    BadBits(u32),
    Openssl(String),
    Write(PathBuf, std::io::Error),
}

impl fmt::Display for DkimCmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DkimCmdError::BadName(name) => write!(f, "{name}: not a valid domain or selector"),
            DkimCmdError::BadBits(bits) => {
                write!(
                    f,
                    "--bits {bits}: use 1024 to 4096 (2048 is the usual size)"
                )
            }
            DkimCmdError::Openssl(e) => write!(f, "openssl: {e}"),
            DkimCmdError::Write(path, e) => write!(f, "{}: {e}", path.display()),
        }
    }
}

impl std::error::Error for DkimCmdError {}

pub fn run(command: &DkimCmd) -> Result<(), DkimCmdError> {
    let DkimCmd::Keygen {
        domain,
        selector,
        kind,
        bits,
        directory,
    } = command;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    for name in [&domain, selector] {
        if !valid_name(name) {
            return Err(DkimCmdError::BadName(name.clone()));
        }
    }
    if *kind == KeyKind::Rsa && !(1024..=4096).contains(bits) {
        return Err(DkimCmdError::BadBits(*bits));
    }
    let path = directory.join(format!("{selector}.{domain}.pem"));
    let private = generate(*kind, *bits)?;
    let public = public_der(&private)?;
    write_private(&path, &private)?;
    // Ed25519 (RFC 8463): p= is the raw 32-byte key, the end of its
    // SubjectPublicKeyInfo; RSA: the SubjectPublicKeyInfo.
    let (k, p) = match kind {
        KeyKind::Rsa => ("rsa", STANDARD.encode(&public)),
        KeyKind::Ed25519 => (
            "ed25519",
            STANDARD.encode(&public[public.len().saturating_sub(32)..]),
        ),
    };
    let record = format!("v=DKIM1; k={k}; p={p}");
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    println!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        strings.join(" ")
    );
    eprintln!(
        "mailgate: private key written to {}; its dkim_key_table line: \
         {selector}._domainkey.{domain} {domain}:{selector}:{}",
        path.display(),
        path.display()
    );
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, DkimCmdError> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| DkimCmdError::Openssl(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.unwrap_or_default())
            .map_err(|e| DkimCmdError::Openssl(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| DkimCmdError::Openssl(e.to_string()))?;
    if !out.status.success() {
        return Err(DkimCmdError::Openssl(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(out.stdout)
}

/// A PKCS#8 PEM private key.
fn generate(kind: KeyKind, bits: u32) -> Result<Vec<u8>, DkimCmdError> {
    match kind {
        KeyKind::Rsa => openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &format!("rsa_keygen_bits:{bits}"),
            ],
            None,
        ),
        KeyKind::Ed25519 => openssl(&["genpkey", "-algorithm", "ed25519"], None),
    }
}

/// The SubjectPublicKeyInfo of a PEM private key, DER.
fn public_der(private: &[u8]) -> Result<Vec<u8>, DkimCmdError> {
    openssl(&["pkey", "-pubout", "-outform", "DER"], Some(private))
}

fn write_private(path: &Path, pem: &[u8]) -> Result<(), DkimCmdError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| DkimCmdError::Write(path.to_path_buf(), e))?;
    file.write_all(pem)
        .and_then(|()| file.sync_all())
        .map_err(|e| DkimCmdError::Write(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("example.com"));
        assert!(valid_name("sel-2024_a"));
        assert!(!valid_name("bad name"));
        assert!(!valid_name("a..b"));
        assert!(!valid_name(""));
    }
}
