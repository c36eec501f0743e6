//! Real milters from Debian's packages, each run privately on a free
//! loopback port (or a socket in a temporary directory) and stopped when
//! dropped: opendkim (signing), clamav-milter (against the tests' clamd),
//! and tests/milters/test_milter.py on python3-milter (Sendmail's libmilter
//! bound to Python) for the cases no packaged milter makes on demand: body
//! replacement, SMFIR_REPLYCODE, quarantine, discard, envelope changes.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{free_port, terminate, wait_for};

fn listening(port: u16) -> Option<()> {
    TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
}

/// Debian's opendkim in signing mode for `domain` with selector "test",
/// on inet:127.0.0.1:`port`. Mail from 127.0.0.1 (its default
/// InternalHosts) is signed.
pub struct OpenDkim {
    pub port: u16,
    /// The TXT record of the public key (`v=DKIM1; k=rsa; p=...`).
    pub public_key: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl OpenDkim {
    pub fn start(domain: &str) -> OpenDkim {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let status = Command::new("opendkim-genkey")
            .args(["-b", "2048", "-s", "test", "-d", domain, "-D"])
            .arg(d)
            .status()
            .expect("opendkim-genkey (Debian package opendkim-tools) must be installed");
        assert!(status.success(), "opendkim-genkey failed");
        let txt = fs::read_to_string(d.join("test.txt")).expect("test.txt");
        // test.txt is a zone file line: the quoted strings joined.
        let public_key: String = txt
            .split('"')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        let port = free_port();
        let conf = d.join("opendkim.conf");
        fs::write(
            &conf,
            format!(
                "Syslog no\nMode sv\nDomain {domain}\nSelector test\nKeyFile {key}\n\
                 Socket inet:{port}@127.0.0.1\nCanonicalization relaxed/simple\n\
                 RequireSafeKeys no\nPidFile {pid}\nUMask 022\n",
                key = d.join("test.private").display(),
                pid = d.join("opendkim.pid").display(),
            ),
        )
        .expect("opendkim.conf");
        let child = Command::new("opendkim")
            .arg("-f")
            .arg("-x")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("opendkim (Debian package opendkim) must be installed");
        let opendkim = OpenDkim {
            port,
            public_key,
            dir,
            child,
        };
        wait_for("opendkim to listen", || listening(port));
        opendkim
    }
}

impl Drop for OpenDkim {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Debian's clamav-milter on inet:127.0.0.1:`port`, asking the clamd at
/// `clamd_socket`: infected mail is rejected, and when clamd cannot be
/// asked the milter answers tempfail (OnFail Defer).
pub struct ClamavMilter {
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    child: Child,
}

impl ClamavMilter {
    pub fn start(clamd_socket: &Path) -> ClamavMilter {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let port = free_port();
        let log = d.join("clamav-milter.log");
        let conf = d.join("clamav-milter.conf");
        fs::write(
            &conf,
            format!(
                "Foreground yes\nMilterSocket inet:{port}@127.0.0.1\nClamdSocket unix:{clamd}\n\
                 OnInfected Reject\nOnFail Defer\nOnClean Accept\nAddHeader Replace\n\
                 LogFile {log}\nLogInfected Basic\nLogClean Basic\nPidFile {pid}\n\
                 TemporaryDirectory {tmp}\n",
                clamd = clamd_socket.display(),
                log = log.display(),
                pid = d.join("clamav-milter.pid").display(),
                tmp = d.display(),
            ),
        )
        .expect("clamav-milter.conf");
        let child = Command::new("clamav-milter")
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clamav-milter (Debian package clamav-milter) must be installed");
        let milter = ClamavMilter {
            port,
            log,
            _dir: dir,
            child,
        };
        wait_for("clamav-milter to listen", || listening(port));
        milter
    }
}

impl Drop for ClamavMilter {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// tests/milters/test_milter.py on `socket` (Postfix's form without the
/// host part: `inet:PORT@127.0.0.1` or `unix:/path`), logging what it saw
/// to `log`.
pub struct TestMilter {
    pub log: PathBuf,
    child: Child,
    /// The directory of its log, when it made one (dropped after it).
    _dir: Option<tempfile::TempDir>,
}

impl TestMilter {
    pub fn start(socket: &str, log: &Path) -> TestMilter {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("milters/test_milter.py");
        // Debian's interpreter, where python3-milter installs its module.
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(socket)
            .arg(log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 with python3-milter must be installed");
        let milter = TestMilter {
            log: log.to_path_buf(),
            child,
            _dir: None,
        };
        wait_for("the test milter to listen", || {
            if let Some(port) = socket
                .strip_prefix("inet:")
                .and_then(|s| s.split('@').next())
            {
                listening(port.parse().ok()?)
            } else {
                let path = socket.strip_prefix("unix:")?;
                std::os::unix::net::UnixStream::connect(path).ok().map(drop)
            }
        });
        milter
    }

    /// What the milter logged so far.
    pub fn seen(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// On a free loopback port, logging in a directory of its own.
    pub fn inet() -> (TestMilter, u16) {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut milter = TestMilter::start(
            &format!("inet:{port}@127.0.0.1"),
            &dir.path().join("milter.log"),
        );
        milter._dir = Some(dir);
        (milter, port)
    }
}

impl Drop for TestMilter {
    fn drop(&mut self) {
        terminate(&mut self.child);
        self._dir.take();
    }
}

/// How [`HostileMilter`] answers MAIL FROM.
#[derive(Clone, Copy, Debug)]
pub enum Misbehaviour {
    /// A length prefix of 2 GiB.
    HugeFrame,
    /// SMFIR_ADDHEADER, which only the end of a message may carry.
    EarlyModification,
    /// A reply code the protocol does not have.
    UnknownReply,
    /// Nothing at all.
    Silence,
}

/// A milter that negotiates as libmilter does and then answers MAIL FROM
/// as no milter should: a test double for hostile replies (no packaged
/// milter misbehaves on demand).
pub struct HostileMilter {
    pub port: u16,
}

impl HostileMilter {
    pub fn start(how: Misbehaviour) -> HostileMilter {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let frame = |cmd: u8, data: &[u8]| {
                        let mut out = ((data.len() + 1) as u32).to_be_bytes().to_vec();
                        out.push(cmd);
                        out.extend_from_slice(data);
                        out
                    };
                    loop {
                        let mut head = [0u8; 4];
                        if stream.read_exact(&mut head).is_err() {
                            return;
                        }
                        let mut data = vec![0u8; u32::from_be_bytes(head) as usize];
                        if stream.read_exact(&mut data).is_err() {
                            return;
                        }
                        let answer = match data[0] {
                            b'O' => {
                                let mut o = 6u32.to_be_bytes().to_vec();
                                o.extend_from_slice(&1u32.to_be_bytes());
                                o.extend_from_slice(&0u32.to_be_bytes());
                                frame(b'O', &o)
                            }
                            b'D' | b'A' => continue,
                            b'Q' => return,
                            b'M' => match how {
                                Misbehaviour::HugeFrame => vec![0x7f, 0xff, 0xff, 0xff, b'c'],
                                Misbehaviour::EarlyModification => frame(b'h', b"X-Evil\0yes\0"),
                                Misbehaviour::UnknownReply => frame(b'Z', b""),
                                Misbehaviour::Silence => continue,
                            },
                            _ => frame(b'c', b""),
                        };
                        if stream.write_all(&answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        HostileMilter { port }
    }
}
