//! A client of ClamAV's clamd: the INSTREAM command over a Unix or TCP
//! socket (clamd(8), "zINSTREAM"). One connection per message, as clamd
//! expects; blocking I/O with timeouts, because scans run on blocking
//! threads anyway.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where clamd listens: main.cf's `clamd_socket`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClamdAddr {
    Unix(PathBuf),
    /// `host:port`, as given.
    Inet(String),
}

impl ClamdAddr {
    /// `unix:/path` or `inet:host:port` (a bare absolute path means unix:).
    pub fn parse(spec: &str) -> Result<ClamdAddr, String> {
        let spec = spec.trim();
        if let Some(path) = spec.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!(
                    "clamd_socket = {spec}: the unix: path must be absolute"
                ));
            }
            return Ok(ClamdAddr::Unix(PathBuf::from(path)));
        }
        if let Some(hostport) = spec.strip_prefix("inet:") {
            return match hostport.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(ClamdAddr::Inet(hostport.to_string()))
                }
                _ => Err(format!(
                    "clamd_socket = {spec}: expected inet:host:port, such as inet:127.0.0.1:3310"
                )),
            };
        }
        if spec.starts_with('/') {
            return Ok(ClamdAddr::Unix(PathBuf::from(spec)));
        }
        Err(format!(
            "clamd_socket = {spec}: expected unix:/path/to/clamd.ctl or inet:host:port"
        ))
    }

    /// The same socket as seen from inside a chroot at `root`. A Unix
    /// socket must live under the chroot (as clamd's socket does in
    /// chrooted Postfix setups); TCP needs no file system.
    pub fn inside_chroot(&self, root: &Path) -> Result<ClamdAddr, String> {
        match self {
            ClamdAddr::Inet(_) => Ok(self.clone()),
            ClamdAddr::Unix(path) => match path.strip_prefix(root) {
                Ok(rest) => Ok(ClamdAddr::Unix(Path::new("/").join(rest))),
                Err(_) => Err(format!(
                    "clamd_socket = unix:{}: the scanner is chrooted into {} and cannot reach a \
                     socket outside it; set clamd's LocalSocket under that directory, use \
                     inet:host:port, or set the scanner's chroot column in master.cf to n",
                    path.display(),
                    root.display()
                )),
            },
        }
    }
}

impl std::fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ClamdAddr::Inet(hostport) => write!(f, "inet:{hostport}"),
        }
    }
}

#[derive(Debug)]
pub enum ClamdError {
    Connect {
        addr: String,
        source: io::Error,
    },
    Io(io::Error),
    /// clamd answered something that is not a scan result.
    Protocol(String),
    /// clamd reported an error (size limit, database problem, ...).
    Clamd(String),
}

impl std::fmt::Display for ClamdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClamdError::Connect { addr, source } => {
                write!(f, "cannot connect to clamd at {addr}: {source}")
            }
            ClamdError::Io(e) if e.kind() == io::ErrorKind::WouldBlock => {
                write!(f, "clamd timed out (clamd_timeout)")
            }
            ClamdError::Io(e) => write!(f, "clamd connection failed: {e}"),
            ClamdError::Protocol(m) => write!(f, "unexpected answer from clamd: {m}"),
            ClamdError::Clamd(m) => write!(f, "clamd reported an error: {m}"),
        }
    }
}

impl std::error::Error for ClamdError {}

impl From<io::Error> for ClamdError {
    fn from(e: io::Error) -> Self {
        ClamdError::Io(e)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ClamdResult {
    Clean,
    Infected(Vec<String>),
}

/// clamd's default StreamMaxLength is 25M; chunks well below it keep
/// memory flat on both ends.
const CHUNK: usize = 64 * 1024;

trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

/// Scans `content` with INSTREAM. `timeout` bounds each read and write.
pub fn scan(
    addr: &ClamdAddr,
    timeout: Duration,
    content: &[u8],
) -> Result<ClamdResult, ClamdError> {
    let connect_error = |source| ClamdError::Connect {
        addr: addr.to_string(),
        source,
    };
    let mut conn: Box<dyn Conn> = match addr {
        ClamdAddr::Unix(path) => {
            let s = UnixStream::connect(path).map_err(connect_error)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Box::new(s)
        }
        ClamdAddr::Inet(hostport) => {
            let s = TcpStream::connect(hostport.as_str()).map_err(connect_error)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Box::new(s)
        }
    };
    conn.write_all(b"zINSTREAM\0")?;
    for chunk in content.chunks(CHUNK) {
        conn.write_all(&(chunk.len() as u32).to_be_bytes())?;
        conn.write_all(chunk)?;
    }
    conn.write_all(&0u32.to_be_bytes())?;
    conn.flush()?;
    // The answer is one NUL-terminated line; bound it, a peer that is not
    // clamd must not make us read forever.
    let mut answer = Vec::new();
    conn.take(64 * 1024).read_to_end(&mut answer)?;
    parse_answer(&answer)
}

/// `stream: OK`, `stream: NAME FOUND` (one line per virus with
/// AllMatchScans), or `... ERROR`.
fn parse_answer(raw: &[u8]) -> Result<ClamdResult, ClamdError> {
    let text = String::from_utf8_lossy(raw);
    let mut viruses = Vec::new();
    let mut clean = false;
    for line in text
        .split(['\0', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let result = line.split_once(": ").map(|(_, r)| r).unwrap_or(line);
        if result == "OK" {
            clean = true;
        } else if let Some(name) = result.strip_suffix(" FOUND") {
            viruses.push(name.to_string());
        } else if result.ends_with("ERROR") {
            return Err(ClamdError::Clamd(line.to_string()));
        } else {
            return Err(ClamdError::Protocol(line.to_string()));
        }
    }
    if !viruses.is_empty() {
        Ok(ClamdResult::Infected(viruses))
    } else if clean {
        Ok(ClamdResult::Clean)
    } else {
        Err(ClamdError::Protocol("empty answer".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn addresses() {
        assert_eq!(
            ClamdAddr::parse("unix:/run/clamav/clamd.ctl"),
            Ok(ClamdAddr::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            ClamdAddr::parse("/run/clamd.ctl"),
            Ok(ClamdAddr::Unix("/run/clamd.ctl".into()))
        );
        assert_eq!(
            ClamdAddr::parse("inet:127.0.0.1:3310"),
            Ok(ClamdAddr::Inet("127.0.0.1:3310".into()))
        );
        assert!(ClamdAddr::parse("inet:127.0.0.1").is_err());
        assert!(ClamdAddr::parse("unix:relative").is_err());
        assert!(ClamdAddr::parse("tcp:x:1").is_err());
        let unix = ClamdAddr::Unix("/var/lib/mailgate/scanner/clamd/clamd.ctl".into());
        assert_eq!(
            unix.inside_chroot(Path::new("/var/lib/mailgate/scanner")),
            Ok(ClamdAddr::Unix("/clamd/clamd.ctl".into()))
        );
        assert!(
            unix.inside_chroot(Path::new("/srv/empty"))
                .unwrap_err()
                .contains("cannot reach")
        );
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer(b"stream: OK\0").unwrap(), ClamdResult::Clean);
        assert_eq!(
            parse_answer(b"stream: Eicar-Test FOUND\0").unwrap(),
            ClamdResult::Infected(vec!["Eicar-Test".into()])
        );
        assert!(matches!(
            parse_answer(b"INSTREAM size limit exceeded. ERROR\0"),
            Err(ClamdError::Clamd(_))
        ));
        assert!(matches!(parse_answer(b""), Err(ClamdError::Protocol(_))));
        assert!(matches!(
            parse_answer(b"hello"),
            Err(ClamdError::Protocol(_))
        ));
    }

    /// A fake clamd that checks the INSTREAM framing and finds "VIRUS".
    #[test]
    fn instream_framing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut command = [0u8; 10];
                s.read_exact(&mut command).unwrap();
                assert_eq!(&command, b"zINSTREAM\0");
                let mut data = Vec::new();
                loop {
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len).unwrap();
                    let len = u32::from_be_bytes(len) as usize;
                    if len == 0 {
                        break;
                    }
                    let mut chunk = vec![0u8; len];
                    s.read_exact(&mut chunk).unwrap();
                    data.extend(chunk);
                }
                let found = data.windows(5).any(|w| w == b"VIRUS");
                let answer: &[u8] = if found {
                    b"stream: Test.Virus FOUND\0"
                } else {
                    b"stream: OK\0"
                };
                s.write_all(answer).unwrap();
            }
        });
        let addr = ClamdAddr::Unix(path.clone());
        let big = vec![b'a'; 200_000];
        assert_eq!(
            scan(&addr, Duration::from_secs(5), &big).unwrap(),
            ClamdResult::Clean
        );
        let mut infected = big.clone();
        infected.extend(b"VIRUS");
        assert_eq!(
            scan(&addr, Duration::from_secs(5), &infected).unwrap(),
            ClamdResult::Infected(vec!["Test.Virus".into()])
        );
        server.join().unwrap();
        drop(dir);
        assert!(matches!(
            scan(&addr, Duration::from_secs(1), b"x"),
            Err(ClamdError::Connect { .. })
        ));
    }
}
