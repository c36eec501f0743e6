//! The private Dovecot's files: dovecot.conf for the listeners asked for,
//! the passwd-file, and the certificate IMAP presents.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::{IMAP_HOST, Plaintext, User};

/// The listeners of one Dovecot (None: not asked for); sockets as absolute
/// paths.
pub(super) struct Listeners {
    pub auth_port: Option<u16>,
    pub auth_socket: Option<PathBuf>,
    pub imap_port: Option<u16>,
    pub imaps_port: Option<u16>,
    pub lmtp_port: Option<u16>,
    pub lmtp_socket: Option<PathBuf>,
}

/// passwd-file: user:password:uid:gid:gecos:home:shell:extra, the extra
/// fields prefixed userdb_ being userdb fields (the quota rule).
pub(super) fn passwd_file(d: &Path, users: &[User], mail: &nix::unistd::User) -> String {
    users
        .iter()
        .map(|user| {
            let quota = user
                .quota_bytes
                .map(|bytes| format!("userdb_quota_rule=*:storage={bytes}B"))
                .unwrap_or_default();
            format!(
                "{name}:{{PLAIN}}{password}:{uid}:{gid}::{home}::{quota}\n",
                name = user.name,
                password = user.password,
                uid = mail.uid,
                gid = mail.gid,
                home = d.join("home").join(&user.name).display(),
            )
        })
        .collect()
}

/// dovecot.conf: everything in `d`, only the services asked for.
pub(super) fn dovecot_conf(
    d: &Path,
    listeners: &Listeners,
    plaintext: Plaintext,
    tls: bool,
) -> String {
    let l = listeners;
    let mut protocols = Vec::new();
    if l.imap_port.is_some() || l.imaps_port.is_some() {
        protocols.push("imap");
    }
    if l.lmtp_port.is_some() || l.lmtp_socket.is_some() {
        protocols.push("lmtp");
    }
    // Trusted networks count as secured; TlsOnly does not trust the
    // loopback clients, so LOGIN needs TLS there.
    let (disable_plaintext, trusted) = match plaintext {
        Plaintext::Allowed => ("no", "127.0.0.0/8"),
        Plaintext::TlsOnly => ("yes", ""),
    };
    let dir = d.display();
    let mut conf = format!(
        "base_dir = {dir}/run\n\
         state_dir = {dir}/state\n\
         log_path = {dir}/dovecot.log\n\
         instance_name = mailgate-test-{instance}\n\
         protocols = {protocols}\n\
         listen = 127.0.0.1\n\
         auth_mechanisms = plain login\n\
         auth_failure_delay = 0\n\
         disable_plaintext_auth = {disable_plaintext}\n\
         login_trusted_networks = {trusted}\n\
         mail_location = maildir:~/Maildir\n\
         first_valid_uid = 1\n\
         mail_plugins = quota\n\
         plugin {{\n  quota = maildir:User quota\n}}\n\
         passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {dir}/users\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = username_format=%u {dir}/users\n}}\n\
         namespace inbox {{\n  inbox = yes\n}}\n\
         service anvil {{\n  chroot =\n}}\n",
        instance = d.file_name().unwrap_or_default().to_string_lossy(),
        protocols = if protocols.is_empty() {
            "none".to_string()
        } else {
            protocols.join(" ")
        },
    );
    if tls {
        let _ = write!(
            conf,
            "ssl = yes\nssl_cert = <{dir}/dovecot.pem\nssl_key = <{dir}/dovecot.key\n\
             protocol lmtp {{\n  ssl = no\n}}\n"
        );
    } else {
        conf.push_str("ssl = no\n");
    }
    if l.imap_port.is_some() || l.imaps_port.is_some() {
        // Both named as in Dovecot's defaults, which they replace; port 0
        // turns one off (not 143 or 993, shared by every test Dovecot).
        conf.push_str("service imap-login {\n");
        conf.push_str(&inet_listener(
            "imap",
            IMAP_HOST,
            l.imap_port.unwrap_or(0),
            false,
        ));
        conf.push_str(&inet_listener(
            "imaps",
            IMAP_HOST,
            l.imaps_port.unwrap_or(0),
            true,
        ));
        conf.push_str("}\n");
    }
    conf.push_str("service auth {\n");
    if let Some(port) = l.auth_port {
        conf.push_str(&inet_listener("auth-tcp", "127.0.0.1", port, false));
    }
    if let Some(path) = &l.auth_socket {
        conf.push_str(&unix_listener(path));
    }
    conf.push_str("}\n");
    if l.lmtp_port.is_some() || l.lmtp_socket.is_some() {
        conf.push_str("service lmtp {\n");
        if let Some(port) = l.lmtp_port {
            conf.push_str(&inet_listener("lmtp", "127.0.0.1", port, false));
        }
        if let Some(path) = &l.lmtp_socket {
            conf.push_str(&unix_listener(path));
        }
        conf.push_str("}\n");
    }
    conf
}

fn inet_listener(name: &str, address: &str, port: u16, ssl: bool) -> String {
    let ssl = if ssl { "    ssl = yes\n" } else { "" };
    format!("  inet_listener {name} {{\n    address = {address}\n    port = {port}\n{ssl}  }}\n")
}

/// Mode 0666: the directory the socket is in decides who may reach it.
fn unix_listener(path: &Path) -> String {
    format!(
        "  unix_listener {} {{\n    mode = 0666\n  }}\n",
        path.display()
    )
}

/// A CA and a certificate it signed for localhost, 127.0.0.1 and
/// 127.0.0.2; returns the CA file.
pub(super) fn write_certificates(d: &Path) -> PathBuf {
    let pki = crate::tls::TestPki::new(&["localhost", "127.0.0.1", IMAP_HOST]);
    fs::write(d.join("dovecot.pem"), &pki.chain_pem).expect("cert");
    fs::write(d.join("dovecot.key"), &pki.key_pem).expect("key");
    let ca = d.join("ca.pem");
    fs::write(&ca, &pki.ca_pem).expect("ca");
    ca
}
