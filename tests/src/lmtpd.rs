//! A private Dovecot LMTP server (Debian's dovecot-lmtpd) for relay's
//! inward LMTP delivery: LMTP on a free loopback port, mailbox users from a
//! passwd-file (each with an optional quota, so that a recipient can be
//! refused after DATA), a Maildir per user. The system's Dovecot service
//! is never touched.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{free_port, wait_for};

pub struct DovecotLmtp {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

/// A mailbox user: the local part Dovecot looks up (the domain is
/// ignored), and a storage quota in bytes when the mailbox is to be
/// (nearly) full.
pub struct Mailbox<'a> {
    pub user: &'a str,
    pub quota_bytes: Option<u64>,
}

/// The user Dovecot stores mail as.
fn mail_user() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody")
}

impl DovecotLmtp {
    /// Starts Dovecot speaking LMTP on 127.0.0.1 for `mailboxes`; any other
    /// user is unknown (refused at RCPT TO).
    pub fn start(mailboxes: &[Mailbox]) -> DovecotLmtp {
        DovecotLmtp::start_with(mailboxes, None)
    }

    /// The same, also listening on the Unix socket `socket` (mode 0666:
    /// the directory it is put in decides who may reach it).
    pub fn start_on_socket(mailboxes: &[Mailbox], socket: &Path) -> DovecotLmtp {
        let lmtp = DovecotLmtp::start_with(mailboxes, Some(socket));
        wait_for("Dovecot's LMTP socket", || socket.exists().then_some(()));
        lmtp
    }

    fn start_with(mailboxes: &[Mailbox], socket: Option<&Path>) -> DovecotLmtp {
        let dir = tempfile::tempdir().expect("tempdir");
        // The mail processes run as nobody and must reach their homes.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.path();
        let nobody = mail_user();
        let mut users = String::new();
        for mailbox in mailboxes {
            let home = d.join("home").join(mailbox.user);
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(home.join("Maildir").join(sub)).unwrap();
            }
            // passwd-file: user:password:uid:gid:gecos:home:shell:extra,
            // extra fields prefixed userdb_ being userdb fields.
            let quota = mailbox
                .quota_bytes
                .map(|bytes| format!("userdb_quota_rule=*:storage={bytes}B"))
                .unwrap_or_default();
            users.push_str(&format!(
                "{user}::{uid}:{gid}::{home}::{quota}\n",
                user = mailbox.user,
                uid = nobody.uid,
                gid = nobody.gid,
                home = home.display(),
            ));
        }
        chown_tree(&d.join("home"), &nobody);
        fs::write(d.join("users"), users).unwrap();
        let port = free_port();
        let unix_listener = socket
            .map(|path| {
                format!(
                    "  unix_listener {} {{\n    mode = 0666\n  }}\n",
                    path.display()
                )
            })
            .unwrap_or_default();
        let config = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {d}/dovecot.log\n\
             protocols = lmtp\n\
             listen = 127.0.0.1\n\
             ssl = no\n\
             mail_location = maildir:~/Maildir\n\
             first_valid_uid = 1\n\
             mail_plugins = quota\n\
             plugin {{\n  quota = maildir:User quota\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = username_format=%n {d}/users\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format=%n {d}/users\n}}\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n{unix_listener}}}\n\
             service anvil {{\n  chroot =\n}}\n",
            d = d.display(),
        );
        fs::write(d.join("dovecot.conf"), config).unwrap();
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dovecot (Debian packages dovecot-core, dovecot-lmtpd) must be installed");
        let lmtp = DovecotLmtp { dir, port, child };
        wait_for("Dovecot's LMTP listener", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        lmtp
    }

    fn maildir_new(&self, user: &str) -> PathBuf {
        self.dir
            .path()
            .join("home")
            .join(user)
            .join("Maildir")
            .join("new")
    }

    /// The messages delivered to a user's INBOX, oldest first by name.
    pub fn messages(&self, user: &str) -> Vec<String> {
        let mut paths: Vec<PathBuf> = fs::read_dir(self.maildir_new(user))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.sort();
        paths
            .iter()
            .filter_map(|p| fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits until a message containing `marker` is in `user`'s INBOX.
    pub fn wait_for_message(&self, user: &str, marker: &str) -> String {
        wait_for(&format!("a message with {marker:?} for {user}"), || {
            self.messages(user).into_iter().find(|m| m.contains(marker))
        })
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

impl Drop for DovecotLmtp {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its children.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}
