//! Real peers from Debian's packages, each started on a free loopback port
//! in its own temporary directory and stopped when dropped: postgrey (a
//! policy server), redis-server, and a private stock Postfix instance (its
//! own config and queue directories; the machine's own Postfix, if any, is
//! never touched).

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{Client, free_port, is_root, terminate, wait_for};

fn listening(port: u16) -> Option<()> {
    TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
}

fn chown_to(path: &Path, user: &str) {
    let user = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user {user} (created by its Debian package)"));
    nix::unistd::chown(path, Some(user.uid), Some(user.gid)).expect("chown");
}

/// Debian's postgrey, listening on 127.0.0.1:`port` with its database in a
/// temporary directory and no whitelists.
pub struct Postgrey {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Postgrey {
    /// `delay` is postgrey's --delay, in seconds.
    pub fn start(delay: u32) -> Postgrey {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut command = Command::new("postgrey");
        if is_root() {
            // postgrey drops to its own user; its database must be its own.
            chown_to(dir.path(), "postgrey");
            command.args(["--user=postgrey", "--group=postgrey"]);
        }
        let child = command
            .arg(format!("--inet=127.0.0.1:{port}"))
            .arg(format!("--dbdir={}", dir.path().display()))
            .arg(format!("--delay={delay}"))
            .args([
                "--whitelist-clients=/dev/null",
                "--whitelist-recipients=/dev/null",
                "--hostname=postgrey.test",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgrey (Debian package postgrey) must be installed");
        let postgrey = Postgrey {
            port,
            _dir: dir,
            child,
        };
        wait_for("postgrey to listen", || listening(port));
        postgrey
    }
}

impl Drop for Postgrey {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Debian's redis-server on 127.0.0.1:`port`, saving nothing to disk.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        redis.restart();
        redis
    }

    /// `redis:127.0.0.1:PORT/db` for main.cf.
    pub fn spec(&self, db: u32) -> String {
        format!("redis:127.0.0.1:{}/{db}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: it saves nothing).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        self.child = Some(child);
        let port = self.port;
        wait_for("redis-server to answer PING", || {
            use std::io::{Read, Write};
            let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
            stream.write_all(b"PING\r\n").ok()?;
            let mut answer = [0u8; 7];
            stream.read_exact(&mut answer).ok()?;
            (&answer == b"+PONG\r\n").then_some(())
        });
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private instance of Debian's stock Postfix: its own config_directory
/// and queue_directory in a temporary directory, smtpd on 127.0.0.1:`port`,
/// relaying `relay_domains = example.com` to a backend. Started with the
/// master in the foreground (`master -c DIR -d`), as root, and stopped
/// (SIGTERM to that master) when dropped.
pub struct StockPostfix {
    pub port: u16,
    pub dir: tempfile::TempDir,
    master: Child,
}

impl StockPostfix {
    /// `extra` is appended to main.cf (restrictions, say).
    pub fn start(backend_port: u16, extra: &str) -> StockPostfix {
        assert!(
            is_root(),
            "a stock Postfix instance needs root (run the tests as ./run-tests does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        fs::set_permissions(base, fs::Permissions::from_mode(0o755)).expect("chmod");
        let spool = base.join("spool");
        for sub in [
            "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
            "private", "saved", "trace",
        ] {
            make_dir(&spool.join(sub), "postfix", 0o700);
        }
        make_dir(&spool.join("pid"), "root", 0o755);
        make_dir(&spool.join("maildrop"), "postfix", 0o730);
        make_dir(&spool.join("public"), "postfix", 0o710);
        for sub in ["maildrop", "public"] {
            let postdrop = nix::unistd::Group::from_name("postdrop")
                .ok()
                .flatten()
                .expect("group postdrop (Debian package postfix)");
            nix::unistd::chown(&spool.join(sub), None, Some(postdrop.gid)).expect("chgrp");
        }
        make_dir(&base.join("data"), "postfix", 0o700);
        let port = free_port();
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {spool}\n\
             data_directory = {data}\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = stock.example.com\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mydestination =\n\
             alias_maps =\n\
             alias_database =\n\
             local_recipient_maps =\n\
             relay_domains = example.com\n\
             transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{backend_port} }}\n\
             mynetworks = 127.0.0.0/8\n\
             smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
             smtpd_error_sleep_time = 0\n\
             maillog_file_prefixes = {base}\n\
             maillog_file = {base}/maillog\n\
             {extra}\n",
            spool = spool.display(),
            data = base.join("data").display(),
            base = base.display(),
        );
        fs::write(base.join("main.cf"), main_cf).expect("main.cf");
        fs::write(base.join("master.cf"), stock_master_cf(port)).expect("master.cf");
        let master = Command::new("/usr/lib/postfix/sbin/master")
            .arg("-c")
            .arg(base)
            .arg("-d")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("Postfix's master (Debian package postfix) must be installed");
        let postfix = StockPostfix { port, dir, master };
        wait_for("the stock Postfix smtpd to greet", || {
            let mut client = Client::connect(port, "127.0.0.1").ok()?;
            let greeting = client.greeting.clone();
            client.send("QUIT");
            greeting.starts_with("220").then_some(())
        });
        postfix
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.path("maillog")).unwrap_or_default()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for StockPostfix {
    fn drop(&mut self) {
        terminate(&mut self.master);
    }
}

fn make_dir(path: &Path, owner: &str, mode: u32) {
    fs::create_dir_all(path).expect("mkdir");
    chown_to(path, owner);
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Debian's master.cf with smtpd on the test port and every service out of
/// chroot (a chrooted Postfix needs copies of /etc files in its queue).
fn stock_master_cf(port: u16) -> String {
    let stock = fs::read_to_string("/etc/postfix/master.cf")
        .expect("/etc/postfix/master.cf (Debian package postfix)");
    let mut out = String::new();
    for line in stock.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with(['#', ' ', '\t']) || fields.len() < 8 {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if fields[0] == "smtp" && fields[1] == "inet" {
            out.push_str(&format!("127.0.0.1:{port} inet n - n - - smtpd\n"));
            continue;
        }
        let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        fields[4] = "n".to_string();
        out.push_str(&fields.join(" "));
        out.push('\n');
    }
    out
}
