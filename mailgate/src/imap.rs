//! A small IMAP4rev1 client (RFC 3501), blocking, for `mailgate learn`:
//! IMAPS or IMAP with STARTTLS (never in clear), LOGIN, SELECT, UID
//! SEARCH, UID FETCH BODY.PEEK[], UID STORE, UID MOVE (or COPY and
//! delete), EXPUNGE. Server data is bounded: lines, literals and counts.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_LINE: usize = 1 << 20;

/// Where a folder is: `imaps://user@host[:port]/Folder` (TLS from the
/// start, port 993) or `imap://...` (STARTTLS, port 143).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderUrl {
    pub implicit_tls: bool,
    pub user: String,
    pub host: String,
    pub port: u16,
    pub folder: String,
}

impl fmt::Display for FolderUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.implicit_tls { "imaps" } else { "imap" };
        write!(
            f,
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.folder
        )
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(text.get(i + 1..i + 3)?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl FolderUrl {
    /// Parses an imap:// or imaps:// URL; None for anything else (a path).
    /// The user may hold an `@` (written as is or as %40): the host is
    /// after the last one.
    pub fn parse(text: &str) -> Option<Result<FolderUrl, String>> {
        let (implicit_tls, rest) = if let Some(rest) = text.strip_prefix("imaps://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("imap://") {
            (false, rest)
        } else {
            return None;
        };
        Some(FolderUrl::parse_rest(implicit_tls, rest).map_err(|why| format!("{text}: {why}")))
    }

    fn parse_rest(implicit_tls: bool, rest: &str) -> Result<FolderUrl, String> {
        let (authority, folder) = rest
            .split_once('/')
            .ok_or("no folder (expected imaps://user@host/Folder)")?;
        let (user, hostport) = authority
            .rsplit_once('@')
            .ok_or("no user (expected imaps://user@host/Folder)")?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || hostport.starts_with('[') => {
                (host, port.parse().map_err(|_| "bad port")?)
            }
            _ => (hostport, if implicit_tls { 993 } else { 143 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let user = percent_decode(user).ok_or("bad %-escape in the user")?;
        let folder = percent_decode(folder).ok_or("bad %-escape in the folder")?;
        if user.is_empty() || host.is_empty() || folder.is_empty() {
            return Err("expected imaps://user@host/Folder".into());
        }
        Ok(FolderUrl {
            implicit_tls,
            user,
            host: host.to_string(),
            port,
            folder,
        })
    }
}

#[derive(Debug)]
pub enum ImapError {
    Connect(String),
    Tls(String),
    Io(io::Error),
    /// The server said NO or BAD, or something we do not understand.
    Refused {
        command: String,
        answer: String,
    },
    Protocol(String),
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImapError::Connect(why) => write!(f, "cannot connect: {why}"),
            ImapError::Tls(why) => write!(f, "TLS: {why}"),
            ImapError::Io(e) => write!(f, "{e}"),
            ImapError::Refused { command, answer } => write!(f, "{command}: {answer}"),
            ImapError::Protocol(why) => write!(f, "unexpected answer from the server: {why}"),
        }
    }
}

impl From<io::Error> for ImapError {
    fn from(e: io::Error) -> ImapError {
        ImapError::Io(e)
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One untagged response: its text, with `{n}` where a literal was, and the
/// literals in order.
#[derive(Debug, Default)]
struct Untagged {
    text: String,
    literals: Vec<Vec<u8>>,
}

pub struct Client {
    stream: BufReader<Box<dyn Stream>>,
    tag: u32,
    capabilities: Vec<String>,
    /// The largest literal accepted (a message).
    max_literal: usize,
}

/// The trust anchors: a CA file given on the command line, or the system's.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, ImapError> {
    let mut roots = rustls::RootCertStore::empty();
    let files: Vec<&Path> = match ca_file {
        Some(file) => vec![file],
        None => [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/usr/local/share/certs/ca-root-nss.crt",
            "/etc/ssl/cert.pem",
        ]
        .iter()
        .map(Path::new)
        .filter(|p| p.exists())
        .take(1)
        .collect(),
    };
    for file in files {
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| ImapError::Tls(format!("{}: {e}", file.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| ImapError::Tls(format!("{}: {e}", file.display())))?;
            roots
                .add(cert)
                .map_err(|e| ImapError::Tls(format!("{}: {e}", file.display())))?;
        }
    }
    if roots.is_empty() {
        return Err(ImapError::Tls(
            "no CA certificates to check the server with (give --ca-file)".into(),
        ));
    }
    Ok(roots)
}

fn tls(tcp: TcpStream, host: &str, ca_file: Option<&Path>) -> Result<Box<dyn Stream>, ImapError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Tls(e.to_string()))?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| ImapError::Tls(format!("{host}: {e}")))?;
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| ImapError::Tls(e.to_string()))?;
    let mut tcp = tcp;
    // Complete the handshake now, so a bad certificate is reported as such.
    while connection.is_handshaking() {
        connection
            .complete_io(&mut tcp)
            .map_err(|e| ImapError::Tls(e.to_string()))?;
    }
    Ok(Box::new(rustls::StreamOwned::new(connection, tcp)))
}

/// `"text"` with `\` and `"` escaped, or None when only a literal can
/// carry it.
fn quoted(text: &str) -> Option<String> {
    if text
        .bytes()
        .any(|b| b == b'\r' || b == b'\n' || b == 0 || b >= 0x80)
    {
        return None;
    }
    Some(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

impl Client {
    /// Connects (TLS from the start, or STARTTLS) and reads the greeting.
    pub fn connect(
        url: &FolderUrl,
        ca_file: Option<&Path>,
        max_literal: usize,
    ) -> Result<Client, ImapError> {
        let address = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| ImapError::Connect(format!("{}: {e}", url.host)))?
            .next()
            .ok_or_else(|| ImapError::Connect(format!("{}: no address", url.host)))?;
        let tcp = TcpStream::connect_timeout(&address, TIMEOUT)
            .map_err(|e| ImapError::Connect(format!("{address}: {e}")))?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.set_write_timeout(Some(TIMEOUT))?;
        let stream: Box<dyn Stream> = if url.implicit_tls {
            tls(tcp.try_clone()?, &url.host, ca_file)?
        } else {
            Box::new(tcp.try_clone()?)
        };
        let mut client = Client {
            stream: BufReader::new(stream),
            tag: 0,
            capabilities: Vec::new(),
            max_literal,
        };
        let greeting = client.read_untagged()?;
        if !greeting.text.starts_with("* OK") && !greeting.text.starts_with("* PREAUTH") {
            return Err(ImapError::Protocol(format!("greeting: {}", greeting.text)));
        }
        if !url.implicit_tls {
            client.refresh_capabilities()?;
            if !client.has("STARTTLS") {
                return Err(ImapError::Tls(
                    "the server does not offer STARTTLS; mailgate never logs in in clear".into(),
                ));
            }
            client.command("STARTTLS")?;
            client.stream = BufReader::new(tls(tcp, &url.host, ca_file)?);
        }
        client.refresh_capabilities()?;
        Ok(client)
    }

    fn has(&self, capability: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(capability))
    }

    fn refresh_capabilities(&mut self) -> Result<(), ImapError> {
        let untagged = self.command("CAPABILITY")?;
        self.capabilities = untagged
            .iter()
            .filter_map(|u| u.text.strip_prefix("* CAPABILITY "))
            .flat_map(|c| c.split_whitespace().map(str::to_string))
            .collect();
        Ok(())
    }

    pub fn login(&mut self, user: &str, password: &str) -> Result<(), ImapError> {
        match (quoted(user), quoted(password)) {
            (Some(u), Some(p)) => self.command_quiet(&format!("LOGIN {u} {p}"), "LOGIN")?,
            _ => {
                return Err(ImapError::Protocol(
                    "the login or password holds characters IMAP LOGIN cannot carry".into(),
                ));
            }
        };
        // Capabilities may change after login.
        self.refresh_capabilities()
    }

    /// Selects a folder for reading and writing; returns its UIDVALIDITY.
    pub fn select(&mut self, folder: &str) -> Result<u32, ImapError> {
        let name = quoted(folder)
            .ok_or_else(|| ImapError::Protocol(format!("folder name {folder:?} not supported")))?;
        let untagged = self.command(&format!("SELECT {name}"))?;
        Ok(untagged
            .iter()
            .find_map(|u| {
                let rest = u.text.split_once("[UIDVALIDITY ")?.1;
                rest.split(']').next()?.parse().ok()
            })
            .unwrap_or(0))
    }

    /// UIDs matching a search (`ALL`, `UNKEYWORD $x`, ...).
    pub fn search(&mut self, criteria: &str) -> Result<Vec<u32>, ImapError> {
        let untagged = self.command(&format!("UID SEARCH {criteria}"))?;
        let mut uids: Vec<u32> = untagged
            .iter()
            .filter_map(|u| u.text.strip_prefix("* SEARCH"))
            .flat_map(|list| list.split_whitespace().filter_map(|n| n.parse().ok()))
            .collect();
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// One whole message, without setting \Seen.
    pub fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
        let untagged = self.command(&format!("UID FETCH {uid} (UID BODY.PEEK[])"))?;
        Ok(untagged
            .into_iter()
            .find(|u| u.text.contains(" FETCH ") && u.text.contains("BODY[]"))
            .and_then(|u| u.literals.into_iter().next()))
    }

    /// `UID STORE uids +FLAGS.SILENT (flags)`.
    pub fn add_flags(&mut self, uids: &[u32], flags: &str) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        self.command(&format!("UID STORE {} +FLAGS.SILENT ({flags})", set(uids)))
            .map(drop)
    }

    /// Moves messages to another folder: UID MOVE where the server has it,
    /// else COPY, \Deleted and expunge.
    pub fn move_to(&mut self, uids: &[u32], folder: &str) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        let name = quoted(folder)
            .ok_or_else(|| ImapError::Protocol(format!("folder name {folder:?} not supported")))?;
        if self.has("MOVE") {
            return self
                .command(&format!("UID MOVE {} {name}", set(uids)))
                .map(drop);
        }
        self.command(&format!("UID COPY {} {name}", set(uids)))?;
        self.delete(uids)
    }

    /// Flags messages \Deleted and expunges them (only them, with UIDPLUS).
    pub fn delete(&mut self, uids: &[u32]) -> Result<(), ImapError> {
        if uids.is_empty() {
            return Ok(());
        }
        self.add_flags(uids, "\\Deleted")?;
        if self.has("UIDPLUS") {
            self.command(&format!("UID EXPUNGE {}", set(uids)))
                .map(drop)
        } else {
            self.command("EXPUNGE").map(drop)
        }
    }

    pub fn logout(mut self) {
        let _ = self.command("LOGOUT");
    }

    fn command(&mut self, command: &str) -> Result<Vec<Untagged>, ImapError> {
        let verb = command.split(' ').take(2).collect::<Vec<_>>().join(" ");
        self.command_quiet(command, &verb)
    }

    /// Sends a command; `shown` is what errors call it (not the password).
    fn command_quiet(&mut self, command: &str, shown: &str) -> Result<Vec<Untagged>, ImapError> {
        self.tag += 1;
        let tag = format!("m{}", self.tag);
        let stream = self.stream.get_mut();
        stream.write_all(format!("{tag} {command}\r\n").as_bytes())?;
        stream.flush()?;
        let mut untagged = Vec::new();
        loop {
            let response = self.read_untagged()?;
            if let Some(status) = response.text.strip_prefix(&format!("{tag} ")) {
                if status.starts_with("OK") {
                    return Ok(untagged);
                }
                return Err(ImapError::Refused {
                    command: shown.to_string(),
                    answer: status.to_string(),
                });
            }
            if response.text.starts_with("* BYE") && !command.starts_with("LOGOUT") {
                return Err(ImapError::Protocol(response.text));
            }
            if untagged.len() > 1_000_000 {
                return Err(ImapError::Protocol("too many responses".into()));
            }
            untagged.push(response);
        }
    }

    /// One response line, with any literals it announces read in.
    fn read_untagged(&mut self) -> Result<Untagged, ImapError> {
        let mut response = Untagged::default();
        loop {
            let mut line = Vec::new();
            let n = (&mut self.stream)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line)?;
            if n == 0 {
                return Err(ImapError::Protocol(
                    "the server closed the connection".into(),
                ));
            }
            if !line.ends_with(b"\n") {
                return Err(ImapError::Protocol("a line too long".into()));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            response.text.push_str(text);
            // A literal: "{123}" (or "{123+}") at the end of the line.
            let Some(size) = text
                .strip_suffix('}')
                .and_then(|t| t.rsplit_once('{'))
                .and_then(|(_, n)| n.trim_end_matches('+').parse::<usize>().ok())
            else {
                return Ok(response);
            };
            if size > self.max_literal {
                return Err(ImapError::Protocol(format!(
                    "a literal of {size} bytes, more than the {} allowed",
                    self.max_literal
                )));
            }
            let mut literal = vec![0u8; size];
            self.stream.read_exact(&mut literal)?;
            response.literals.push(literal);
        }
    }
}

/// A UID set: `1,3,5:9`.
fn set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(FolderUrl::parse("/var/mail/x"), None);
        let u = FolderUrl::parse("imaps://ann@example.com@mail.example.com/Junk")
            .unwrap()
            .unwrap();
        assert_eq!(
            u,
            FolderUrl {
                implicit_tls: true,
                user: "ann@example.com".into(),
                host: "mail.example.com".into(),
                port: 993,
                folder: "Junk".into()
            }
        );
        let u = FolderUrl::parse("imap://bob%40x@127.0.0.1:1143/INBOX/Not%20Junk")
            .unwrap()
            .unwrap();
        assert_eq!(
            (u.implicit_tls, u.user.as_str(), u.port, u.folder.as_str()),
            (false, "bob@x", 1143, "INBOX/Not Junk")
        );
        let u = FolderUrl::parse("imaps://a@[::1]:9993/J").unwrap().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9993));
        for bad in [
            "imaps://host/Junk",
            "imaps://a@h",
            "imaps://a@h:x/J",
            "imaps://@h/J",
        ] {
            assert!(FolderUrl::parse(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn quoting_and_sets() {
        assert_eq!(quoted("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert_eq!(quoted("a\r\nb"), None);
        assert_eq!(set(&[5, 1, 2, 3, 9, 10]), "1:3,5,9:10");
        assert_eq!(set(&[7]), "7");
    }
}
