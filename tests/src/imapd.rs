//! A private Dovecot (Debian's dovecot-imapd) for the tests: IMAP with
//! STARTTLS and IMAPS on free loopback ports, users from a passwd-file, a
//! Maildir per user that the test fills, and optionally its auth socket
//! (what Postfix's smtpd_sasl_type = dovecot talks to) at a given path.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{free_port, wait_for};

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    /// Plain IMAP (STARTTLS offered).
    pub imap_port: u16,
    /// IMAP over TLS.
    pub imaps_port: u16,
    /// The self-signed certificate Dovecot presents (for 127.0.0.1 and
    /// localhost): what a client must trust.
    pub certificate: PathBuf,
    pub key: PathBuf,
    child: Child,
}

/// The user Dovecot stores mail as (a static userdb).
fn mail_user() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody")
}

/// A self-signed certificate for localhost and 127.0.0.1 made with
/// openssl(1): (certificate, key).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(status.success(), "openssl req failed");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    (cert, key)
}

impl Dovecot {
    /// Starts Dovecot with `users` as (login, password). With
    /// `auth_socket` = (path, owner), its auth service also listens there,
    /// mode 0660 for that user.
    pub fn start(users: &[(&str, &str)], auth_socket: Option<(&Path, &str)>) -> Dovecot {
        let dir = tempfile::tempdir().expect("tempdir");
        // The mail processes run as nobody and must reach their homes.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        let (certificate, key) = self_signed(d);
        let passwd: String = users
            .iter()
            .map(|(user, password)| format!("{user}:{{PLAIN}}{password}::::::\n"))
            .collect();
        fs::write(d.join("users"), passwd).unwrap();
        let nobody = mail_user();
        for (user, _) in users {
            let home = d.join("home").join(user);
            for folder in ["", ".Junk", ".NotJunk", ".Learned"] {
                for sub in ["cur", "new", "tmp"] {
                    fs::create_dir_all(home.join("Maildir").join(folder).join(sub)).unwrap();
                }
            }
            chown_tree(&d.join("home"), &nobody);
        }
        let (imap_port, imaps_port) = (free_port(), free_port());
        let auth_listener = match auth_socket {
            Some((path, owner)) => format!(
                "  unix_listener {} {{\n    mode = 0660\n    user = {owner}\n  }}\n",
                path.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             ssl = yes\n\
             ssl_cert = <{cert}\n\
             ssl_key = <{key}\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             mail_location = maildir:~/Maildir\n\
             first_valid_uid = 1\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/home/%u\n}}\n\
             namespace inbox {{\n  inbox = yes\n}}\n\
             service imap-login {{\n  inet_listener imap {{\n    port = {imap_port}\n  }}\n  \
             inet_listener imaps {{\n    port = {imaps_port}\n    ssl = yes\n  }}\n}}\n\
             service auth {{\n{auth_listener}}}\n\
             service anvil {{\n  chroot =\n}}\n",
            d = d.display(),
            cert = certificate.display(),
            key = key.display(),
            uid = nobody.uid,
            gid = nobody.gid,
        );
        fs::write(d.join("dovecot.conf"), config).unwrap();
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dovecot (Debian package dovecot-imapd) must be installed");
        let dovecot = Dovecot {
            dir,
            imap_port,
            imaps_port,
            certificate,
            key,
            child,
        };
        wait_for("Dovecot to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", dovecot.imaps_port)).ok()?;
            std::net::TcpStream::connect(("127.0.0.1", dovecot.imap_port)).ok()
        });
        if let Some((path, _)) = auth_socket {
            wait_for("Dovecot's auth socket", || path.exists().then_some(()));
        }
        dovecot
    }

    fn folder(&self, user: &str, folder: &str) -> PathBuf {
        let maildir = self.dir.path().join("home").join(user).join("Maildir");
        match folder {
            "INBOX" => maildir,
            other => maildir.join(format!(".{other}")),
        }
    }

    /// Puts a message into a user's folder (Maildir's new/).
    pub fn deliver(&self, user: &str, folder: &str, message: &str) {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}.M{n}P{}.test", 1_700_000_000 + n, std::process::id());
        let path = self.folder(user, folder).join("new").join(name);
        fs::write(&path, message.replace('\n', "\r\n")).unwrap();
        let nobody = mail_user();
        nix::unistd::chown(&path, Some(nobody.uid), Some(nobody.gid)).unwrap();
    }

    /// How many messages a folder holds (new/ and cur/, not those flagged
    /// deleted and expunged).
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

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

fn chown_tree(path: &Path, user: &nix::unistd::User) {
    nix::unistd::chown(path, Some(user.uid), Some(user.gid)).unwrap();
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap().flatten() {
            chown_tree(&entry.path(), user);
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}
