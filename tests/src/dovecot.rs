//! A private Dovecot (Debian's dovecot-core and dovecot-imapd) for the AUTH
//! tests: its own configuration in a temporary directory, a passwd-file
//! with the test users, its auth service on a TCP port and a Unix socket,
//! and IMAP on two ports (STARTTLS and imaps), with a certificate made
//! for the run. The system's Dovecot service is never touched.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{free_port, wait_for};

pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub auth_port: u16,
    /// IMAP listens on 127.0.0.2, so that a client (from 127.0.0.1) is
    /// not on Dovecot's "local connection, considered secure" exemption.
    pub imap_host: &'static str,
    pub imap_port: u16,
    pub imaps_port: u16,
    /// The auth service's Unix socket.
    pub auth_socket: PathBuf,
    /// The CA that signed Dovecot's certificate (for `localhost` and
    /// 127.0.0.1).
    pub ca_file: PathBuf,
    child: Child,
}

/// The users every test Dovecot knows: (name, password).
pub const USERS: [(&str, &str); 2] = [
    ("bob@example.com", "bob's secret"),
    ("alice", "wonder land"),
];

/// How the IMAP side treats plaintext logins.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Plaintext {
    /// LOGIN works without TLS (Dovecot's disable_plaintext_auth = no).
    Allowed,
    /// LOGIN only after STARTTLS (LOGINDISABLED before).
    TlsOnly,
}

impl Dovecot {
    pub fn start(plaintext: Plaintext) -> Dovecot {
        Dovecot::start_with_socket(plaintext, None)
    }

    /// With the auth service's Unix socket at `socket` (inside a gateway's
    /// spool, where its chrooted smtpd reaches it as `private/auth`).
    pub fn start_with_socket(plaintext: Plaintext, socket: Option<PathBuf>) -> Dovecot {
        assert!(
            crate::is_root(),
            "the Dovecot tests start Dovecot, which must run as root (run-tests runs them as root)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        // Dovecot's own users (dovecot, dovenull) must reach the directory.
        fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let ca_file = write_certificates(d);
        let users: String = USERS
            .iter()
            .map(|(user, password)| format!("{user}:{{PLAIN}}{password}::::::\n"))
            .collect();
        fs::write(d.join("users"), users).expect("users");
        let (auth_port, imap_port, imaps_port) = (free_port(), free_port(), free_port());
        let auth_socket = socket.unwrap_or_else(|| d.join("auth-client"));
        // Trusted networks count as secured; TlsOnly does not trust the
        // loopback clients, so LOGIN needs TLS there.
        let (disable_plaintext, trusted) = match plaintext {
            Plaintext::Allowed => ("no", "127.0.0.0/8"),
            Plaintext::TlsOnly => ("yes", ""),
        };
        let config = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             instance_name = mailgate-test-{imap_port}\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             ssl = yes\n\
             ssl_cert = <{d}/dovecot.pem\n\
             ssl_key = <{d}/dovecot.key\n\
             auth_mechanisms = plain login\n\
             auth_failure_delay = 0\n\
             disable_plaintext_auth = {disable_plaintext}\n\
             login_trusted_networks = {trusted}\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/users\n  \
             default_fields = uid=nobody gid=nogroup home={d}/home/%n\n}}\n\
             service imap-login {{\n  \
               inet_listener imap {{\n    address = 127.0.0.2\n    port = {imap_port}\n  }}\n  \
               inet_listener imaps {{\n    address = 127.0.0.2\n    port = {imaps_port}\n    ssl = yes\n  }}\n\
             }}\n\
             service auth {{\n  \
               inet_listener {{\n    address = 127.0.0.1\n    port = {auth_port}\n  }}\n  \
               unix_listener {socket} {{\n    mode = 0666\n  }}\n\
             }}\n",
            d = d.display(),
            socket = auth_socket.display(),
        );
        fs::write(d.join("dovecot.conf"), config).expect("dovecot.conf");
        for sub in ["run", "state", "home"] {
            fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dovecot (Debian packages dovecot-core, dovecot-imapd) must be installed");
        let dovecot = Dovecot {
            dir,
            auth_port,
            imap_host: "127.0.0.2",
            imap_port,
            imaps_port,
            auth_socket,
            ca_file,
            child,
        };
        for (host, port) in [
            ("127.0.0.1", auth_port),
            ("127.0.0.2", imap_port),
            ("127.0.0.2", imaps_port),
        ] {
            wait_for("Dovecot to listen", || {
                TcpStream::connect((host, port)).ok()
            });
        }
        wait_for("Dovecot's auth socket", || {
            dovecot.auth_socket.exists().then_some(())
        });
        dovecot
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM: the master stops its children and exits.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// A CA and a certificate it signed for localhost and 127.0.0.1; returns
/// the CA file.
fn write_certificates(dir: &Path) -> PathBuf {
    let pki = crate::tls::TestPki::new(&["localhost", "127.0.0.1", "127.0.0.2"]);
    fs::write(dir.join("dovecot.pem"), &pki.chain_pem).expect("cert");
    fs::write(dir.join("dovecot.key"), &pki.key_pem).expect("key");
    let ca = dir.join("ca.pem");
    fs::write(&ca, &pki.ca_pem).expect("ca");
    ca
}
