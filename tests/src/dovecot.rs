//! A private Dovecot (Debian's dovecot-core, dovecot-imapd, dovecot-lmtpd)
//! for the tests: its own dovecot.conf in a temporary directory, users from
//! a passwd-file (each with a password and optionally a storage quota) and
//! a Maildir per user, and only the listeners a test asks for: the auth
//! service on a TCP port and/or a Unix socket (what smtpd_sasl_type =
//! dovecot talks to), IMAP with STARTTLS and/or imaps (a certificate made
//! for the run), LMTP on a TCP port and/or a Unix socket. The system's
//! Dovecot service is never touched.
//!
//! ```text
//! let dovecot = Dovecot::builder().user("ann", "pw").imaps().start();
//! ```

mod config;

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{free_port, wait_for};

/// IMAP listens on 127.0.0.2, so that a client (from 127.0.0.1) is not on
/// Dovecot's "local connection, considered secure" exemption. The auth
/// service and LMTP listen on 127.0.0.1.
pub const IMAP_HOST: &str = "127.0.0.2";

/// How the IMAP side treats plaintext logins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Plaintext {
    /// LOGIN works without TLS (disable_plaintext_auth = no; the loopback
    /// clients are trusted networks).
    #[default]
    Allowed,
    /// LOGIN only after STARTTLS (LOGINDISABLED before).
    TlsOnly,
}

/// A mail user: the name Dovecot looks up (as given: a login, or the full
/// address an LMTP recipient is), a password, and a storage quota in bytes
/// when the mailbox is to be (nearly) full.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password: String,
    pub quota_bytes: Option<u64>,
}

/// What to start: users, Maildir folders and listeners. Unix socket paths
/// that are relative are in Dovecot's base directory (as Dovecot takes
/// them).
#[derive(Default)]
pub struct Builder {
    users: Vec<User>,
    folders: Vec<String>,
    plaintext: Plaintext,
    auth_tcp: bool,
    auth_socket: Option<PathBuf>,
    imap: bool,
    imaps: bool,
    lmtp_tcp: bool,
    lmtp_socket: Option<PathBuf>,
}

impl Builder {
    pub fn user(mut self, name: &str, password: &str) -> Builder {
        self.users.push(User {
            name: name.into(),
            password: password.into(),
            quota_bytes: None,
        });
        self
    }

    /// A user whose mailbox may hold `bytes` at most.
    pub fn user_with_quota(mut self, name: &str, password: &str, bytes: u64) -> Builder {
        self = self.user(name, password);
        self.users.last_mut().expect("user").quota_bytes = Some(bytes);
        self
    }

    pub fn users(self, users: &[(&str, &str)]) -> Builder {
        users.iter().fold(self, |builder, (name, password)| {
            builder.user(name, password)
        })
    }

    /// Maildir folders every user has besides the INBOX (`deliver` makes
    /// others on demand; these exist before any client asks).
    pub fn folders(mut self, folders: &[&str]) -> Builder {
        self.folders.extend(folders.iter().map(|f| f.to_string()));
        self
    }

    pub fn plaintext(mut self, plaintext: Plaintext) -> Builder {
        self.plaintext = plaintext;
        self
    }

    /// The auth service on a free TCP port of 127.0.0.1.
    pub fn auth_tcp(mut self) -> Builder {
        self.auth_tcp = true;
        self
    }

    /// The auth service on a Unix socket (mode 0666: the directory it is
    /// put in decides who may reach it).
    pub fn auth_socket(mut self, path: impl Into<PathBuf>) -> Builder {
        self.auth_socket = Some(path.into());
        self
    }

    /// IMAP on a free port of [`IMAP_HOST`], STARTTLS offered.
    pub fn imap(mut self) -> Builder {
        self.imap = true;
        self
    }

    /// IMAP over TLS on a free port of [`IMAP_HOST`].
    pub fn imaps(mut self) -> Builder {
        self.imaps = true;
        self
    }

    /// LMTP on a free TCP port of 127.0.0.1.
    pub fn lmtp_tcp(mut self) -> Builder {
        self.lmtp_tcp = true;
        self
    }

    /// LMTP on a Unix socket (mode 0666).
    pub fn lmtp_socket(mut self, path: impl Into<PathBuf>) -> Builder {
        self.lmtp_socket = Some(path.into());
        self
    }

    /// Writes the configuration, starts Dovecot and waits until every
    /// listener asked for is there.
    pub fn start(self) -> Dovecot {
        assert!(
            crate::is_root(),
            "the Dovecot tests start Dovecot, which must run as root (run-tests runs them as root)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        // Dovecot's own users (dovecot, dovenull) and the mail processes
        // (running as nobody) must reach the directory.
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
        let tls = self.imap || self.imaps;
        let ca_file = tls.then(|| config::write_certificates(d));
        let listeners = config::Listeners {
            auth_port: self.auth_tcp.then(free_port),
            auth_socket: self.auth_socket.map(|p| d.join("run").join(p)),
            imap_port: self.imap.then(free_port),
            imaps_port: self.imaps.then(free_port),
            lmtp_port: self.lmtp_tcp.then(free_port),
            lmtp_socket: self.lmtp_socket.map(|p| d.join("run").join(p)),
        };
        let mail = mail_user();
        for sub in ["run", "state", "home"] {
            fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        let mut dovecot = Dovecot {
            dir,
            listeners,
            ca_file,
            child: None,
        };
        for user in &self.users {
            make_folder(&dovecot.folder(&user.name, "INBOX"), &mail);
            for folder in &self.folders {
                make_folder(&dovecot.folder(&user.name, folder), &mail);
            }
        }
        let d = dovecot.dir.path();
        chown(&d.join("home"), &mail);
        fs::write(d.join("users"), config::passwd_file(d, &self.users, &mail)).expect("users");
        let conf = config::dovecot_conf(d, &dovecot.listeners, self.plaintext, tls);
        fs::write(d.join("dovecot.conf"), conf).expect("dovecot.conf");
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect(
                "dovecot (Debian packages dovecot-core, dovecot-imapd, dovecot-lmtpd) must be installed",
            );
        dovecot.child = Some(child);
        dovecot.wait_ready();
        dovecot
    }
}

pub struct Dovecot {
    dir: tempfile::TempDir,
    listeners: config::Listeners,
    ca_file: Option<PathBuf>,
    child: Option<Child>,
}

impl Dovecot {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Waits until every listener takes connections (TCP) or exists (Unix
    /// sockets); Dovecot exiting meanwhile fails at once, with its log.
    fn wait_ready(&mut self) {
        let l = &self.listeners;
        let tcp = [
            ("the auth service", "127.0.0.1", l.auth_port),
            ("IMAP", IMAP_HOST, l.imap_port),
            ("imaps", IMAP_HOST, l.imaps_port),
            ("LMTP", "127.0.0.1", l.lmtp_port),
        ];
        let sockets = [
            ("the auth socket", l.auth_socket.clone()),
            ("the LMTP socket", l.lmtp_socket.clone()),
        ];
        for (what, host, port) in tcp {
            if let Some(port) = port {
                self.wait_alive(&format!("Dovecot's {what} on {host}:{port}"), || {
                    TcpStream::connect((host, port)).is_ok()
                });
            }
        }
        for (what, path) in sockets {
            if let Some(path) = path {
                self.wait_alive(&format!("Dovecot's {what} {}", path.display()), || {
                    path.exists()
                });
            }
        }
    }

    fn wait_alive(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let log = self.dir.path().join("dovecot.log");
        let child = self.child.as_mut().expect("started");
        wait_for(what, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "Dovecot exited ({status}) before {what} was there:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            ready().then_some(())
        });
    }

    /// The temporary directory Dovecot's configuration and mail are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn imap_host(&self) -> &'static str {
        IMAP_HOST
    }

    pub fn auth_port(&self) -> u16 {
        self.listeners.auth_port.expect("no auth_tcp() listener")
    }

    pub fn auth_socket(&self) -> &Path {
        self.listeners
            .auth_socket
            .as_deref()
            .expect("no auth_socket() listener")
    }

    pub fn imap_port(&self) -> u16 {
        self.listeners.imap_port.expect("no imap() listener")
    }

    pub fn imaps_port(&self) -> u16 {
        self.listeners.imaps_port.expect("no imaps() listener")
    }

    pub fn lmtp_port(&self) -> u16 {
        self.listeners.lmtp_port.expect("no lmtp_tcp() listener")
    }

    /// The CA that signed Dovecot's certificate (for localhost, 127.0.0.1
    /// and 127.0.0.2): what an IMAP client must trust.
    pub fn ca_file(&self) -> &Path {
        self.ca_file.as_deref().expect("no IMAP listener, no TLS")
    }

    /// A user's Maildir folder ("INBOX" or a Maildir++ subfolder).
    pub fn folder(&self, user: &str, folder: &str) -> PathBuf {
        let maildir = self.dir.path().join("home").join(user).join("Maildir");
        match folder {
            "INBOX" => maildir,
            other => maildir.join(format!(".{other}")),
        }
    }

    /// Puts a message into a user's folder (Maildir's new/), as Dovecot's
    /// mail user.
    pub fn deliver(&self, user: &str, folder: &str, message: &str) {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}.M{n}P{}.test", 1_700_000_000 + n, std::process::id());
        let mail = mail_user();
        let dir = self.folder(user, folder);
        make_folder(&dir, &mail);
        let path = dir.join("new").join(name);
        fs::write(&path, message.replace('\n', "\r\n")).expect("deliver");
        chown(&path, &mail);
    }

    /// The messages in a user's folder (new/ and cur/), by file name.
    pub fn messages(&self, user: &str, folder: &str) -> Vec<String> {
        let dir = self.folder(user, folder);
        let mut paths: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .flat_map(|sub| fs::read_dir(dir.join(sub)).into_iter().flatten().flatten())
            .map(|entry| entry.path())
            .collect();
        paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        paths
            .iter()
            .filter_map(|p| fs::read_to_string(p).ok())
            .collect()
    }

    /// How many messages a folder holds (new/ and cur/: not those
    /// expunged).
    pub fn count(&self, user: &str, folder: &str) -> usize {
        ["new", "cur"]
            .iter()
            .map(|sub| {
                fs::read_dir(self.folder(user, folder).join(sub))
                    .map(|d| d.count())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Waits until a message containing `marker` is in the user's folder.
    pub fn wait_for_message(&self, user: &str, folder: &str, marker: &str) -> String {
        wait_for(
            &format!("a message with {marker:?} in {user}'s {folder}"),
            || {
                self.messages(user, folder)
                    .into_iter()
                    .find(|m| m.contains(marker))
            },
        )
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // SIGTERM: the master stops its children and exits.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

/// The user Dovecot stores mail as.
fn mail_user() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody")
}

/// A Maildir folder (cur, new, tmp), owned by the mail user.
fn make_folder(dir: &Path, user: &nix::unistd::User) {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    chown(dir, user);
}

fn chown(path: &Path, user: &nix::unistd::User) {
    nix::unistd::chown(path, Some(user.uid), Some(user.gid)).expect("chown");
    if path.is_dir() {
        for entry in fs::read_dir(path).expect("read_dir").flatten() {
            chown(&entry.path(), user);
        }
    }
}
