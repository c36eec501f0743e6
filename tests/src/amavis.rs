//! Debian's amavisd-new as an after-queue content filter, configured as
//! the seeds' tutorials configure it (SMTP/LMTP in on one port, SMTP back
//! to the gateway's re-injection listener), in a temporary directory and
//! on free ports: ClamAV through a test clamd, SpamAssassin with local
//! tests only.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, is_root, terminate};

/// SpamAssassin's rules load in a few seconds on an idle machine; leave
/// room for a busy one.
const STARTUP: Duration = Duration::from_secs(120);

pub struct Amavis {
    pub port: u16,
    /// amavisd's own log file.
    pub log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Amavis {
    /// Starts amavisd-new listening on a free port of 127.0.0.1, scanning
    /// with the clamd at `clamd_socket` and forwarding what it passes to
    /// 127.0.0.1:`reinject_port`; waits until it greets.
    pub fn start(clamd_socket: &Path, reinject_port: u16) -> Amavis {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::make_traversable(dir.path());
        // amavisd refuses a configuration file in a directory its user may
        // write: the file stays root's, the home is amavis's.
        let conf_dir = dir.path().join("conf");
        let home = dir.path().join("home");
        for sub in ["tmp", "db", "var"] {
            fs::create_dir_all(home.join(sub)).expect("amavis dirs");
        }
        fs::create_dir_all(&conf_dir).expect("conf dir");
        let user = if is_root() {
            let amavis = nix::unistd::User::from_name("amavis")
                .expect("user lookup")
                .expect("user amavis (Debian package amavisd-new) must exist");
            for path in ["", "tmp", "db", "var"] {
                nix::unistd::chown(&home.join(path), Some(amavis.uid), Some(amavis.gid))
                    .expect("chown");
            }
            "$daemon_user = 'amavis';\n$daemon_group = 'amavis';\n"
        } else {
            ""
        };
        let port = free_port();
        let log = home.join("var").join("amavis.log");
        let conf = conf_dir.join("amavisd.conf");
        fs::write(
            &conf,
            format!(
                r#"use strict;
$MYHOME = '{home}';
$TEMPBASE = "$MYHOME/tmp";
$db_home = "$MYHOME/db";
$helpers_home = "$MYHOME/var";
$pid_file = "$MYHOME/amavisd.pid";
$lock_file = "$MYHOME/amavisd.lock";
{user}$mydomain = 'example.com';
$myhostname = 'amavis.example.com';
$max_servers = 2;
$inet_socket_bind = '127.0.0.1';
$inet_socket_port = {port};
@inet_acl = qw(127.0.0.1);
$forward_method = 'smtp:[127.0.0.1]:{reinject_port}';
$notify_method = $forward_method;
$DO_SYSLOG = 0;
$LOGFILE = '{log}';
$log_level = 2;
$enable_db = 0;
$enable_zmq = 0;
$enable_dkim_verification = 0;
$enable_dkim_signing = 0;
@local_domains_maps = ( ['.example.com'] );
@bypass_virus_checks_maps = (0);
@bypass_spam_checks_maps = (0);
$final_virus_destiny = D_DISCARD;
$final_banned_destiny = D_PASS;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = D_PASS;
$sa_tag_level_deflt = -999;
$sa_local_tests_only = 1;
$virus_admin = undef;
$spam_admin = undef;
$warnvirussender = 0;
$warnvirusrecip = 0;
@av_scanners = (
  ['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {{}}\n", '{clamd}'],
   qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
@av_scanners_backup = ();
1;
"#,
                home = home.display(),
                log = log.display(),
                clamd = clamd_socket.display(),
            ),
        )
        .expect("amavisd.conf");
        let child = Command::new("amavisd")
            .arg("-c")
            .arg(&conf)
            .arg("foreground")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("amavisd (Debian package amavisd-new) must be installed");
        let mut amavis = Amavis {
            port,
            log,
            child,
            _dir: dir,
        };
        // Net::Server binds the socket before SpamAssassin's rules are
        // loaded; amavisd is ready when its children are started, which it
        // logs.
        let deadline = Instant::now() + STARTUP;
        while !amavis.log_text().contains("ready for work") {
            if let Ok(Some(status)) = amavis.child.try_wait() {
                panic!("amavisd exited ({status}): {}", amavis.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "amavisd was not ready within {STARTUP:?}: {}",
                amavis.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        amavis
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a line of amavis's log containing every one of `needles`.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        crate::wait_for(&format!("amavis log line with {needles:?}"), || {
            self.log_text()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_string)
        })
    }
}

impl Drop for Amavis {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}
