//! Real peers from Debian's packages, each started on a free loopback port
//! in its own temporary directory and stopped when dropped: postgrey (a
//! policy server) and redis-server (the stock Postfix is in postfix.rs).

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::{free_port, is_root, terminate, wait_for};

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
