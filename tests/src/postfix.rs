//! A stock Postfix (Debian's package) run as a private instance, for
//! differential tests: the same main.cf settings and the same SMTP sessions
//! against Postfix and against mailgate.
//!
//! The instance has its own configuration directory, queue and log in a
//! temporary directory and listens on a free loopback port; the machine's
//! own Postfix configuration (if any) is not touched. Its master runs in a
//! private mount namespace (`unshare -m`) where /etc/resolv.conf names the
//! test's DNS server, so both servers see the same DNS and the machine's
//! /etc/hosts (mailgate's smtpd reads it for client names as Postfix's C
//! library does). Needs root (Postfix's master does).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{Client, DnsServer, free_port, wait_for};

const DAEMONS: &str = "/usr/lib/postfix/sbin";

/// master.cf for the instance: every daemon a relay needs, none chrooted.
const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

pub struct StockPostfix {
    pub dir: tempfile::TempDir,
    pub port: u16,
    master: Option<Child>,
}

impl StockPostfix {
    /// Starts Postfix with `extra` main.cf lines (the settings under test)
    /// over a base that relays example.com to `backend_port`, resolving
    /// through `dns` (a server on port 53 of its own address).
    pub fn start(extra: &str, backend_port: u16, dns: &DnsServer) -> StockPostfix {
        assert_eq!(dns.port, 53, "Postfix's resolver can only use port 53");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        crate::make_traversable(d);
        let port = free_port();
        let spool = d.join("spool");
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {spool}\n\
             data_directory = {data}\n\
             command_directory = /usr/sbin\n\
             daemon_directory = {DAEMONS}\n\
             meta_directory = /etc/postfix\n\
             shlib_directory = /usr/lib/postfix\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = gw.example.com\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mydestination =\n\
             alias_maps =\n\
             alias_database =\n\
             mynetworks = 127.0.0.1/32\n\
             relay_domains = example.com\n\
             transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{backend_port} }}\n\
             smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
             smtpd_error_sleep_time = 0\n\
             maillog_file = {log}\n\
             maillog_file_prefixes = {top}\n\
             {extra}\n",
            spool = spool.display(),
            data = d.join("data").display(),
            log = d.join("maillog").display(),
            top = d.display(),
        );
        let etc = d.join("etc");
        fs::create_dir_all(&etc).expect("etc");
        fs::write(etc.join("main.cf"), main_cf).expect("main.cf");
        fs::write(
            etc.join("master.cf"),
            format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF}"),
        )
        .expect("master.cf");
        make_spool(&spool, &d.join("data"));
        fs::write(
            d.join("resolv.conf"),
            format!("nameserver {}\noptions timeout:2 attempts:1\n", dns.ip),
        )
        .expect("resolv.conf");
        let script = format!(
            "mount --bind {resolv} /etc/resolv.conf && exec {DAEMONS}/master -c {etc} -d",
            resolv = d.join("resolv.conf").display(),
            etc = etc.display(),
        );
        let master = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare (util-linux) and Postfix's master must be installed");
        let postfix = StockPostfix {
            dir,
            port,
            master: Some(master),
        };
        wait_for("Postfix's smtpd to greet", || {
            let mut client = Client::connect(port, "127.0.0.1").ok()?;
            let greeting = client.greeting.clone();
            client.send("QUIT");
            greeting.starts_with("220").then_some(())
        });
        postfix
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for StockPostfix {
    fn drop(&mut self) {
        if let Some(mut master) = self.master.take() {
            let _ = kill(Pid::from_raw(master.id() as i32), Signal::SIGTERM);
            // Postfix's master stops its children and exits.
            for _ in 0..100 {
                if let Ok(Some(_)) = master.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = master.kill();
            let _ = master.wait();
        }
    }
}

/// The queue directories `postfix start` would make, owned as Postfix wants.
fn make_spool(spool: &Path, data: &Path) {
    let postfix = nix::unistd::User::from_name("postfix")
        .ok()
        .flatten()
        .expect("user postfix (Debian package postfix)");
    let postdrop = nix::unistd::Group::from_name("postdrop")
        .ok()
        .flatten()
        .expect("group postdrop (Debian package postfix)");
    use std::os::unix::fs::PermissionsExt;
    let make = |name: &str, group: Option<nix::unistd::Gid>, mode: u32| {
        let path = spool.join(name);
        fs::create_dir_all(&path).expect("spool directory");
        nix::unistd::chown(&path, Some(postfix.uid), group).expect("chown");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    };
    fs::create_dir_all(spool.join("pid")).expect("pid");
    for name in [
        "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private",
        "saved", "trace",
    ] {
        make(name, None, 0o700);
    }
    make("maildrop", Some(postdrop.gid), 0o730);
    make("public", Some(postdrop.gid), 0o710);
    fs::create_dir_all(data).expect("data");
    nix::unistd::chown(data, Some(postfix.uid), None).expect("chown data");
}
