//! What smtpd and relay ask tlskeys, the process that holds the private
//! keys, over its Unix socket (`private/tlskeys`).
//!
//! Frames are mailgate's IPC frames (a 4-byte little-endian length, a
//! descriptor count that is always 0 here, postcard). The asking side is
//! synchronous, because rustls asks for a signature synchronously in the
//! middle of a handshake; tlskeys serves with mailgate_ipc's async Channel.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The one socket tlskeys listens on, relative to the spool.
pub const SERVICE: &str = "tlskeys";

/// Which certificates a process wants: its configuration's key files.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    pub side: Side,
    pub key: String,
    pub cert: String,
    pub chain_file: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    Server,
    Client,
}

impl From<mailgate_config::Side> for Side {
    fn from(side: mailgate_config::Side) -> Side {
        match side {
            mailgate_config::Side::Server => Side::Server,
            mailgate_config::Side::Client => Side::Client,
        }
    }
}

impl Source {
    pub fn new(side: mailgate_config::Side, source: &mailgate_config::KeySource) -> Source {
        Source {
            side: side.into(),
            key: source.key.display().to_string(),
            cert: source.cert.display().to_string(),
            chain_file: source.chain_file,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The certificate chains of these sources (as the asking process's
    /// configuration names them); tlskeys answers only for files it loaded
    /// at its own start.
    Certificates { sources: Vec<Source> },
    /// A handshake signature with the key whose public key hashes to
    /// `key_id`.
    Sign {
        key_id: [u8; 32],
        scheme: u16,
        message: Vec<u8>,
    },
    /// The DKIM signature algorithm of a key of dkim_key_table, by name:
    /// "rsa-sha256" or "ed25519-sha256".
    DkimAlgorithm { key: String },
    /// A DKIM signature (RFC 6376 section 3.7) with a key of
    /// dkim_key_table: `data` is the canonicalized header fields ending
    /// with the DKIM-Signature field being made, its b= empty.
    DkimSign { key: String, data: Vec<u8> },
    /// An ARC signature (RFC 8617) with arc_seal_key: `data` ends with
    /// the ARC-Message-Signature or ARC-Seal field being made, its b=
    /// empty (relaxed).
    ArcSign { key: String, data: Vec<u8> },
}

/// A certificate chain and what the asking side needs to know of its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// SHA-256 of the key's SubjectPublicKeyInfo: names the key in Sign.
    pub key_id: [u8; 32],
    /// DER certificates, the server's (or client's) own first.
    pub chain: Vec<Vec<u8>>,
    /// The key's SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    /// The signature schemes the key can make, best first (TLS code points).
    pub schemes: Vec<u16>,
    /// For the log: "RSA-PSS", "ECDSA" or "ED25519".
    pub kind: String,
    /// For the log: "2048 bits" for RSA, the curve ("prime256v1") for ECDSA.
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Certificates(Vec<KeyInfo>),
    Signature(Vec<u8>),
    DkimAlgorithm(String),
    Refused(String),
}

/// Frames above this are refused (a certificate chain is a few KiB).
const MAX_FRAME: usize = 1024 * 1024;

/// Writes one frame in mailgate's IPC format, without descriptors.
pub fn write_frame<M: Serialize>(out: &mut impl Write, message: &M) -> std::io::Result<()> {
    let body = postcard::to_stdvec(message)
        .map_err(|e| std::io::Error::other(format!("cannot encode: {e}")))?;
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.push(0);
    frame.extend_from_slice(&body);
    out.write_all(&frame)?;
    out.flush()
}

/// Reads one frame written by [`write_frame`] or mailgate_ipc's Channel.
pub fn read_frame<M: DeserializeOwned>(input: &mut impl Read) -> std::io::Result<M> {
    let mut header = [0u8; 5];
    input.read_exact(&mut header)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > MAX_FRAME || header[4] != 0 {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes with {} descriptors",
            header[4]
        )));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    postcard::from_bytes(&body).map_err(|e| std::io::Error::other(format!("cannot decode: {e}")))
}

/// What a signature request may sign. tlskeys signs only what a TLS
/// handshake of the key's side signs, so a process that asks for signatures
/// cannot have it sign anything else (a certificate, a document, another
/// protocol's challenge).
pub fn handshake_context(side: Side, message: &[u8]) -> Result<&'static str, &'static str> {
    const PAD: [u8; 64] = [0x20; 64];
    let context: &[u8] = match side {
        Side::Server => b"TLS 1.3, server CertificateVerify\0",
        Side::Client => b"TLS 1.3, client CertificateVerify\0",
    };
    if let Some(rest) = message.strip_prefix(&PAD[..]) {
        if let Some(hash) = rest.strip_prefix(context)
            && matches!(hash.len(), 32 | 48)
        {
            return Ok("TLS 1.3 CertificateVerify");
        }
        return Err("a TLS 1.3 signature context of the other side, or a malformed one");
    }
    match side {
        // TLS 1.2 ServerKeyExchange: client random, server random, then the
        // ECDHE parameters: named_curve (3), the group, the point.
        Side::Server => {
            let params = message
                .get(64..)
                .ok_or("too short for TLS 1.2 parameters")?;
            let valid = params.len() >= 4
                && params[0] == 3
                && usize::from(params[3]) == params.len() - 4
                && matches!(params.len() - 4, 32 | 65 | 97);
            if valid {
                Ok("TLS 1.2 ServerKeyExchange")
            } else {
                Err("not the signed parameters of a TLS handshake")
            }
        }
        // TLS 1.2 client CertificateVerify signs the handshake so far, which
        // begins with the ClientHello.
        Side::Client => {
            if message.first() == Some(&1) && message.len() > 40 {
                Ok("TLS 1.2 CertificateVerify")
            } else {
                Err("not a TLS 1.2 handshake transcript")
            }
        }
    }
}

/// What a DKIM signature request may sign: header data whose last field
/// is a relaxed-canonicalized `dkim-signature:` of the key's own domain
/// and selector, with b= empty. So the DKIM key cannot be made to sign a
/// TLS handshake, another domain's signature, or anything else.
pub fn dkim_context(data: &[u8], domain: &str, selector: &str) -> Result<(), &'static str> {
    let last = match data.windows(2).rposition(|w| w == b"\r\n") {
        Some(pos) if pos + 2 < data.len() => &data[pos + 2..],
        Some(_) => return Err("the DKIM-Signature field must come last, without CRLF"),
        None => data,
    };
    let last = std::str::from_utf8(last).map_err(|_| "the DKIM-Signature field is not text")?;
    let value = last
        .strip_prefix("dkim-signature:")
        .ok_or("the data does not end with a DKIM-Signature field (relaxed)")?;
    let tags = tag_list(value);
    if tags.get("v") != Some(&"1") {
        return Err("not a DKIM-Signature v=1");
    }
    signs_as(&tags, value, domain, selector)
}

/// What an ARC signature request may sign: data whose last field is a
/// relaxed-canonicalized `arc-message-signature:` or `arc-seal:` of the
/// key's own domain and selector, with an instance i= of 1 to 50 and b=
/// last and empty. So the sealing key cannot be made to sign a DKIM
/// signature, a TLS handshake or another domain's seal.
pub fn arc_context(data: &[u8], domain: &str, selector: &str) -> Result<(), &'static str> {
    let last = match data.windows(2).rposition(|w| w == b"\r\n") {
        Some(pos) if pos + 2 < data.len() => &data[pos + 2..],
        Some(_) => return Err("the ARC field must come last, without CRLF"),
        None => data,
    };
    let last = std::str::from_utf8(last).map_err(|_| "the ARC field is not text")?;
    let value = last
        .strip_prefix("arc-message-signature:")
        .or_else(|| last.strip_prefix("arc-seal:"))
        .ok_or("the data does not end with an ARC-Message-Signature or ARC-Seal field (relaxed)")?;
    let tags = tag_list(value);
    if !tags
        .get("i")
        .and_then(|i| i.parse::<u32>().ok())
        .is_some_and(|i| (1..=50).contains(&i))
    {
        return Err("i= is not an ARC instance (1 to 50)");
    }
    signs_as(&tags, value, domain, selector)
}

/// The tags of a signature field's value.
fn tag_list(value: &str) -> std::collections::HashMap<&str, &str> {
    let mut tags = std::collections::HashMap::new();
    for tag in value.split(';') {
        if let Some((name, val)) = tag.split_once('=') {
            tags.insert(name.trim(), val.trim());
        }
    }
    tags
}

/// d= and s= are the key's, and b= is the last tag, empty.
fn signs_as(
    tags: &std::collections::HashMap<&str, &str>,
    value: &str,
    domain: &str,
    selector: &str,
) -> Result<(), &'static str> {
    if !tags
        .get("d")
        .is_some_and(|d| d.eq_ignore_ascii_case(domain))
    {
        return Err("d= is not the key's domain");
    }
    if tags.get("s") != Some(&selector) {
        return Err("s= is not the key's selector");
    }
    let end = value.trim_end().trim_end_matches(';').trim_end();
    if !end.ends_with("b=") || tags.get("b") != Some(&"") {
        return Err("b= must be the last tag and empty");
    }
    Ok(())
}

/// Sends one request on a blocking stream and reads the reply.
pub fn call<S: Read + Write, R: DeserializeOwned>(
    stream: &mut S,
    request: &Request,
) -> std::io::Result<R> {
    write_frame(stream, request)?;
    read_frame(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        let request = Request::Sign {
            key_id: [7; 32],
            scheme: 0x0804,
            message: vec![1, 2, 3],
        };
        write_frame(&mut buf, &request).unwrap();
        assert_eq!(buf[4], 0);
        let back: Request = read_frame(&mut buf.as_slice()).unwrap();
        assert!(matches!(back, Request::Sign { scheme: 0x0804, .. }));
        // A corrupt length is refused before anything is allocated.
        let mut bad = vec![0xff, 0xff, 0xff, 0x7f, 0];
        bad.extend_from_slice(&[0; 16]);
        assert!(read_frame::<Request>(&mut bad.as_slice()).is_err());
    }

    #[test]
    fn only_dkim_signatures_of_the_keys_domain_are_signed() {
        let data = b"from:Bob <bob@example.com>\r\nsubject:hi\r\n\
dkim-signature:v=1; a=rsa-sha256; s=sel; d=example.com; c=relaxed/relaxed; h=From:Subject; bh=abc=; b=;";
        assert_eq!(dkim_context(data, "example.com", "sel"), Ok(()));
        assert_eq!(dkim_context(data, "Example.COM", "sel"), Ok(()));
        assert!(dkim_context(data, "example.org", "sel").is_err());
        assert!(dkim_context(data, "example.com", "other").is_err());
        let mut trailing = data.to_vec();
        trailing.extend_from_slice(b"\r\n");
        assert!(dkim_context(&trailing, "example.com", "sel").is_err());
        let filled = b"dkim-signature:v=1; s=sel; d=example.com; b=AAAA;";
        assert!(dkim_context(filled, "example.com", "sel").is_err());
        assert!(dkim_context(b"subject:hi", "example.com", "sel").is_err());
        // A TLS 1.3 CertificateVerify input is not DKIM data.
        let mut tls13 = vec![0x20; 64];
        tls13.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
        assert!(dkim_context(&tls13, "example.com", "sel").is_err());
    }

    #[test]
    fn only_arc_fields_of_the_keys_domain_are_sealed() {
        let ams = b"from:Bob <bob@example.com>\r\n\
arc-message-signature:i=2; a=rsa-sha256; s=arc; d=gw.example; c=relaxed/relaxed; h=From; t=1; bh=abc=; b=;";
        assert_eq!(arc_context(ams, "gw.example", "arc"), Ok(()));
        assert!(arc_context(ams, "other.example", "arc").is_err());
        assert!(arc_context(ams, "gw.example", "sel").is_err());
        let seal = b"arc-authentication-results:i=1; gw.example; dkim=none\r\n\
arc-message-signature:i=1; a=rsa-sha256; d=gw.example; s=arc; b=xyz;\r\n\
arc-seal:i=1; a=rsa-sha256; s=arc; d=gw.example; cv=none; t=1; b=;";
        assert_eq!(arc_context(seal, "gw.example", "arc"), Ok(()));
        // Instances outside 1 to 50, a filled b=, a DKIM signature and a
        // TLS context are refused.
        assert!(
            arc_context(
                b"arc-seal:i=51; s=arc; d=gw.example; cv=pass; b=;",
                "gw.example",
                "arc"
            )
            .is_err()
        );
        assert!(
            arc_context(
                b"arc-seal:i=0; s=arc; d=gw.example; cv=none; b=;",
                "gw.example",
                "arc"
            )
            .is_err()
        );
        assert!(
            arc_context(
                b"arc-seal:i=1; s=arc; d=gw.example; cv=none; b=AA;",
                "gw.example",
                "arc"
            )
            .is_err()
        );
        let dkim = b"dkim-signature:v=1; a=rsa-sha256; s=arc; d=gw.example; h=From; bh=abc=; b=;";
        assert!(arc_context(dkim, "gw.example", "arc").is_err());
        assert!(dkim_context(ams, "gw.example", "arc").is_err());
        let mut tls13 = vec![0x20; 64];
        tls13.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
        assert!(arc_context(&tls13, "gw.example", "arc").is_err());
    }

    #[test]
    fn only_handshake_signatures_are_signed() {
        let mut tls13 = vec![0x20; 64];
        tls13.extend_from_slice(b"TLS 1.3, server CertificateVerify\0");
        tls13.extend_from_slice(&[9; 32]);
        assert!(handshake_context(Side::Server, &tls13).is_ok());
        // The client context is refused for a server key and vice versa.
        assert!(handshake_context(Side::Client, &tls13).is_err());
        let mut wrong_len = tls13.clone();
        wrong_len.push(0);
        assert!(handshake_context(Side::Server, &wrong_len).is_err());

        let mut tls12 = vec![5u8; 64];
        tls12.extend_from_slice(&[3, 0, 29, 32]);
        tls12.extend_from_slice(&[1; 32]);
        assert!(handshake_context(Side::Server, &tls12).is_ok());
        tls12.push(0);
        assert!(handshake_context(Side::Server, &tls12).is_err());
        // Anything else: a certificate's to-be-signed bytes, a random blob.
        assert!(handshake_context(Side::Server, b"0\x82\x01\x0atbsCertificate").is_err());
        assert!(handshake_context(Side::Server, &[0x20; 100]).is_err());
    }
}
