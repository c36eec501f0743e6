//! PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login): what smtpd
//! decodes from the client before the backend checks it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A username and password, with the identity to act as (PLAIN's
/// authorization identity; empty means the username itself).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub authzid: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a password in a log line or a panic message.
        write!(f, "Credentials({:?})", self.username)
    }
}

/// Why a client's AUTH data is refused (501 in smtpd).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not base64 (RFC 4954: 501 5.5.2).
    Base64,
    /// Decoded, but not a PLAIN message or not UTF-8.
    Malformed,
}

/// The client's base64 text; `=` is the empty string (RFC 4954 §4).
pub fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let text = text.trim();
    if text == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(text).map_err(|_| DecodeError::Base64)
}

pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Malformed)
}

/// PLAIN: `authzid NUL authcid NUL passwd`.
pub fn plain(message: &[u8]) -> Result<Credentials, DecodeError> {
    let mut parts = message.split(|b| *b == 0);
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DecodeError::Malformed);
    };
    if username.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(Credentials {
        authzid: utf8(authzid)?,
        username: utf8(username)?,
        password: utf8(password)?,
    })
}

/// LOGIN: the username and the password, each its own base64 line.
pub fn login(username: &[u8], password: &[u8]) -> Result<Credentials, DecodeError> {
    if username.is_empty() || username.contains(&0) || password.contains(&0) {
        return Err(DecodeError::Malformed);
    }
    Ok(Credentials {
        authzid: String::new(),
        username: utf8(username)?,
        password: utf8(password)?,
    })
}

/// LOGIN's challenges: "Username:" and "Password:", base64.
pub const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages() {
        let c = plain(&decode("AGJvYgBzZWNyZXQ=").unwrap()).unwrap();
        assert_eq!(
            (c.authzid.as_str(), c.username.as_str(), c.password.as_str()),
            ("", "bob", "secret")
        );
        let c = plain(b"admin\0bob\0pw").unwrap();
        assert_eq!(c.authzid, "admin");
        assert_eq!(plain(b"bob\0pw"), Err(DecodeError::Malformed));
        assert_eq!(plain(b"\0\0pw"), Err(DecodeError::Malformed));
        assert_eq!(plain(b"\0bob\0pw\0x"), Err(DecodeError::Malformed));
        assert_eq!(plain(b"\0bob\0\xff"), Err(DecodeError::Malformed));
        assert_eq!(decode("not base64!"), Err(DecodeError::Base64));
        assert_eq!(decode("="), Ok(Vec::new()));
        assert!(!format!("{c:?}").contains("pw"));
    }

    #[test]
    fn login_messages() {
        assert_eq!(decode(LOGIN_USERNAME).unwrap(), b"Username:");
        assert_eq!(decode(LOGIN_PASSWORD).unwrap(), b"Password:");
        let c = login(b"bob", b"secret").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("bob", "secret")
        );
        assert!(login(b"", b"x").is_err());
        assert!(login(b"bob", b"a\0b").is_err());
    }
}
