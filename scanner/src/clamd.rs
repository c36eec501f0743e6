//! A client of ClamAV's clamd (clamd(8)): the INSTREAM command over a Unix
//! or TCP socket ("zINSTREAM"), or FILDES over a Unix socket ("zFILDES"),
//! which passes the message's descriptor instead of its bytes. One
//! connection per message, as clamd expects; blocking I/O with timeouts,
//! because scans run on blocking threads anyway.

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailgate_config::ClamdTransfer;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::unistd::{Whence, lseek};

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
    /// The message's descriptor could not be made ready for FILDES.
    Descriptor(io::Error),
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
            ClamdError::Descriptor(e) => {
                write!(f, "cannot pass the message's descriptor to clamd: {e}")
            }
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

/// How the scanner reaches clamd and hands it a message: main.cf's
/// `clamd_socket` with `clamd_transfer` resolved. FILDES over TCP cannot be
/// built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clamd {
    /// INSTREAM: the bytes, in chunks, over a Unix or TCP socket.
    Instream(ClamdAddr),
    /// FILDES: the message's descriptor, passed over the Unix socket at this
    /// path; clamd reads the file itself and nothing is copied.
    Fildes(PathBuf),
}

impl Clamd {
    /// `addr` is already as seen by the scanner (inside its chroot).
    pub fn new(addr: ClamdAddr, transfer: ClamdTransfer) -> Result<Clamd, String> {
        match (transfer, addr) {
            (ClamdTransfer::Instream, addr) => Ok(Clamd::Instream(addr)),
            (ClamdTransfer::Fildes, ClamdAddr::Unix(path)) => Ok(Clamd::Fildes(path)),
            // ClamdTransfer refuses fildes with inet: already; kept as an
            // error rather than a panic should that ever change.
            (ClamdTransfer::Fildes, addr) => Err(format!(
                "clamd_transfer = fildes needs a Unix socket, not clamd_socket = {addr}"
            )),
        }
    }

    /// Scans one message: `content` is what `message` holds (INSTREAM sends
    /// the bytes, FILDES passes the descriptor). `timeout` bounds each read
    /// and write.
    pub fn scan(
        &self,
        timeout: Duration,
        content: &[u8],
        message: BorrowedFd<'_>,
    ) -> Result<ClamdResult, ClamdError> {
        match self {
            Clamd::Instream(addr) => instream(addr, timeout, content),
            Clamd::Fildes(path) => fildes(path, timeout, message),
        }
    }
}

/// clamd's default StreamMaxLength is 25M; chunks well below it keep
/// memory flat on both ends.
const CHUNK: usize = 64 * 1024;

trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

fn connect_error(addr: String) -> impl FnOnce(io::Error) -> ClamdError {
    move |source| ClamdError::Connect { addr, source }
}

fn connect_unix(path: &Path, timeout: Duration) -> Result<UnixStream, ClamdError> {
    let s = UnixStream::connect(path).map_err(connect_error(format!("unix:{}", path.display())))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// Scans `content` with INSTREAM.
fn instream(
    addr: &ClamdAddr,
    timeout: Duration,
    content: &[u8],
) -> Result<ClamdResult, ClamdError> {
    let mut conn: Box<dyn Conn> = match addr {
        ClamdAddr::Unix(path) => Box::new(connect_unix(path, timeout)?),
        ClamdAddr::Inet(hostport) => {
            let s =
                TcpStream::connect(hostport.as_str()).map_err(connect_error(addr.to_string()))?;
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
    read_answer(conn)
}

/// Scans the file behind `message` with FILDES: the command, then one
/// dummy byte carrying the descriptor (SCM_RIGHTS), as clamdscan sends it.
///
/// The descriptor is cleanup's sealed memfd (no one can write, grow or
/// shrink it), so clamd, another user, gets nothing it could change. Its
/// file offset is shared with cleanup and with clamd once passed; clamd
/// (ClamAV 1.4, checked) maps the whole file whatever the offset and
/// leaves the offset at 0, and every reader in mailgate uses positioned
/// reads. The rewind below only keeps a clamd that read from the current
/// offset from seeing part of the message.
fn fildes(
    path: &Path,
    timeout: Duration,
    message: BorrowedFd<'_>,
) -> Result<ClamdResult, ClamdError> {
    lseek(message, 0, Whence::SeekSet).map_err(|e| ClamdError::Descriptor(io::Error::from(e)))?;
    let mut conn = connect_unix(path, timeout)?;
    conn.write_all(b"zFILDES\0")?;
    let fds = [message.as_raw_fd()];
    // MSG_NOSIGNAL: a clamd that hung up is an error here, not SIGPIPE.
    // The socket's send timeout applies to sendmsg as to write.
    // One byte on a stream socket: sent whole, or an error.
    sendmsg::<()>(
        conn.as_raw_fd(),
        &[IoSlice::new(b"\0")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    // clamd holds its own reference now and closes it after the scan.
    read_answer(conn)
}

/// The answer is one NUL-terminated line; bound it, a peer that is not
/// clamd must not make us read forever.
fn read_answer(conn: impl Read) -> Result<ClamdResult, ClamdError> {
    let mut answer = Vec::new();
    conn.take(64 * 1024).read_to_end(&mut answer)?;
    parse_answer(&answer)
}

/// `stream: OK` (`fd[N]: OK` for FILDES), `stream: NAME FOUND` (one line
/// per virus with AllMatchScans), or `... ERROR`.
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
    use nix::sys::socket::{ControlMessageOwned, recvmsg};
    use std::fs::File;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
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

    /// A file holding `bytes`, its offset left at the end (as after
    /// writing it).
    fn message_file(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn scan(clamd: &Clamd, timeout: Duration, content: &[u8]) -> Result<ClamdResult, ClamdError> {
        clamd.scan(timeout, content, message_file(content).as_fd())
    }

    #[test]
    fn fildes_needs_a_unix_socket() {
        let unix = ClamdAddr::Unix("/clamd/clamd.ctl".into());
        let inet = ClamdAddr::Inet("127.0.0.1:3310".into());
        assert_eq!(
            Clamd::new(unix.clone(), ClamdTransfer::Fildes),
            Ok(Clamd::Fildes("/clamd/clamd.ctl".into()))
        );
        assert_eq!(
            Clamd::new(unix.clone(), ClamdTransfer::Instream),
            Ok(Clamd::Instream(unix))
        );
        assert_eq!(
            Clamd::new(inet.clone(), ClamdTransfer::Instream),
            Ok(Clamd::Instream(inet.clone()))
        );
        let e = Clamd::new(inet, ClamdTransfer::Fildes).unwrap_err();
        assert!(e.contains("clamd_socket = inet:127.0.0.1:3310"), "{e}");
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
        let addr = Clamd::Instream(ClamdAddr::Unix(path.clone()));
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

    /// What clamd gets after FILDES: the dummy byte and one descriptor.
    fn receive_descriptor(s: &UnixStream) -> OwnedFd {
        let mut byte = [0xffu8; 1];
        let mut fds = Vec::new();
        {
            let mut iov = [io::IoSliceMut::new(&mut byte)];
            let mut space = nix::cmsg_space!([RawFd; 1]);
            let msg = recvmsg::<()>(s.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())
                .unwrap();
            assert_eq!(msg.bytes, 1);
            for cmsg in msg.cmsgs().unwrap() {
                if let ControlMessageOwned::ScmRights(received) = cmsg {
                    // SAFETY: the kernel just installed these descriptors
                    // in this process for us; nothing else owns them.
                    fds.extend(
                        received
                            .into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
        }
        assert_eq!(byte, [0], "the dummy byte");
        assert_eq!(fds.len(), 1, "one descriptor");
        fds.pop().unwrap()
    }

    /// A fake clamd that checks the FILDES framing, reads the passed file
    /// from its current offset (as a naive clamd would) and finds "VIRUS".
    #[test]
    fn fildes_passes_the_descriptor_rewound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clamd.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let mut sizes = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut command = [0u8; 8];
                s.read_exact(&mut command).unwrap();
                assert_eq!(&command, b"zFILDES\0");
                let fd = receive_descriptor(&s);
                let number = fd.as_raw_fd();
                let mut data = Vec::new();
                File::from(fd).read_to_end(&mut data).unwrap();
                sizes.push(data.len());
                let answer = if data.windows(5).any(|w| w == b"VIRUS") {
                    format!("fd[{number}]: Test.Virus FOUND\0")
                } else {
                    format!("fd[{number}]: OK\0")
                };
                s.write_all(answer.as_bytes()).unwrap();
            }
            sizes
        });
        let clamd = Clamd::Fildes(path.clone());
        let big = vec![b'a'; 200_000];
        let mut infected = big.clone();
        infected.extend(b"VIRUS");
        // The byte buffer is not what FILDES sends: give it nothing.
        let timeout = Duration::from_secs(5);
        assert_eq!(
            clamd
                .scan(timeout, b"", message_file(&big).as_fd())
                .unwrap(),
            ClamdResult::Clean
        );
        assert_eq!(
            clamd
                .scan(timeout, b"", message_file(&infected).as_fd())
                .unwrap(),
            ClamdResult::Infected(vec!["Test.Virus".into()])
        );
        assert_eq!(server.join().unwrap(), [big.len(), infected.len()]);
        drop(dir);
        assert!(matches!(
            scan(&clamd, Duration::from_secs(1), b"x"),
            Err(ClamdError::Connect { .. })
        ));
    }
}
