//! Debian's rspamd, run privately as a milter: its own configuration
//! directory in a temporary directory (the stock rules from /etc/rspamd
//! and /usr/share/rspamd, the local settings here), only the proxy worker,
//! in milter mode with self_scan, on a free loopback port. No Redis (the
//! modules that need one disable themselves), no controller or normal
//! worker, and DNS pointed at a closed loopback port so that nothing it
//! does leaves the machine (its RBL, SPF and map look-ups fail at once).

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use crate::{free_port, is_root, terminate};

pub struct Rspamd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

/// The top of rspamd.conf: Debian's common.conf and the proxy worker only.
const MAIN: &str = r#".include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
}
logging {
    type = "file";
    filename = "$LOGDIR/rspamd.log";
    level = "info";
}
worker "rspamd_proxy" {
    .include "$CONFDIR/worker-proxy.inc"
    .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/worker-proxy.inc"
}
"#;

impl Rspamd {
    pub fn start() -> Rspamd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let port = free_port();
        for sub in ["local.d", "run", "db", "log"] {
            fs::create_dir_all(d.join(sub)).expect("rspamd dirs");
        }
        fs::write(d.join("rspamd.conf"), MAIN).expect("rspamd.conf");
        let local = d.join("local.d");
        let write = |name: &str, text: String| fs::write(local.join(name), text).expect(name);
        // The proxy worker scans itself (self_scan) and speaks milter.
        write(
            "worker-proxy.inc",
            format!(
                "bind_socket = \"127.0.0.1:{port}\";\nmilter = yes;\ncount = 1;\n\
                 upstream \"local\" {{\n  default = yes;\n  self_scan = yes;\n}}\n"
            ),
        );
        write(
            "options.inc",
            "dns { nameserver = [\"127.0.0.1:1\"]; timeout = 1s; retransmits = 1; }\n".into(),
        );
        // The headers rspamd's milter_headers module adds, for every
        // client (the tests' clients are on 127.0.0.1).
        write(
            "milter_headers.conf",
            "use = [\"x-spamd-result\", \"x-rspamd-server\", \"x-rspamd-action\"];\n\
             skip_local = false;\nskip_authenticated = false;\n"
                .into(),
        );
        let mut cmd = Command::new("rspamd");
        cmd.arg("-f")
            .arg("-c")
            .arg(d.join("rspamd.conf"))
            .arg("--var")
            .arg("CONFDIR=/etc/rspamd")
            .arg("--var")
            .arg(format!("LOCAL_CONFDIR={}", d.display()));
        for (var, sub) in [("RUNDIR", "run"), ("DBDIR", "db"), ("LOGDIR", "log")] {
            cmd.arg("--var")
                .arg(format!("{var}={}", d.join(sub).display()));
        }
        // As root, rspamd's workers must run as a user of their own: the
        // package's _rspamd, owning the directory.
        if is_root() {
            chown_tree(d, "_rspamd");
            cmd.args(["-u", "_rspamd", "-g", "_rspamd"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rspamd (Debian package rspamd) must be installed");
        let mut rspamd = Rspamd { port, dir, child };
        // rspamd loads its whole rule set first (seconds, more on a busy
        // machine): a longer patience than the other peers get.
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = rspamd.child.try_wait() {
                panic!("rspamd exited ({status}):\n{}", rspamd.log());
            }
            assert!(
                Instant::now() < deadline,
                "rspamd's proxy worker did not listen:\n{}",
                rspamd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        rspamd
    }

    /// rspamd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log/rspamd.log")).unwrap_or_default()
    }
}

fn chown_tree(dir: &Path, user: &str) {
    let user = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user {user} (made by Debian's rspamd package)"));
    let walk = walkdir(dir);
    for path in walk {
        nix::unistd::chown(&path, Some(user.uid), Some(user.gid)).expect("chown");
    }
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walkdir(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}
