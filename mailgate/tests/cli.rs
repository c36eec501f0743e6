//! Runs the `mailgate` program against configurations in temporary directories.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use nix::fcntl::{Flock, FlockArg};

struct TestDir(tempfile::TempDir);

impl TestDir {
    fn new() -> TestDir {
        TestDir(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.path().join(name), text).unwrap();
    }

    /// A good configuration whose spool is inside this directory.
    fn configure(&self, extra_main_cf: &str) {
        self.write(
            "master.cf",
            "smtp inet n - - - - smtpd\ncleanup unix n - - - 0 cleanup\nanvil unix - - y - 1 anvil\n",
        );
        self.write(
            "main.cf",
            &format!(
                "queue_directory = {}/spool\nmaster_drain_time = 1s\n{extra_main_cf}",
                self.path().display()
            ),
        );
        std::fs::create_dir_all(self.path().join("spool/pid")).unwrap();
    }

    fn pid_file(&self) -> PathBuf {
        self.path().join("spool/pid/master.pid")
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn mailgate(dir: &TestDir, args: &[&str]) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .arg("-c")
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn check_reports_errors_and_warnings() {
    let dir = TestDir::new();
    dir.configure("");
    let out = mailgate(&dir, &["check"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            0,
            format!(
                "ok: {}: 3 services in master.cf (smtpd, cleanup, anvil), 2 parameters set in main.cf\n",
                dir.path().display()
            )
            .as_str(),
            ""
        )
    );

    dir.write(
        "master.cf",
        "smtp inet n - - - - smtpd\ncleanup unix n - n - 0 cleanup\nanvil unix - - y - 1 anvil\n",
    );
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.starts_with("ok: ") && out.stdout.ends_with(", 1 warning\n"),
        "{}",
        out.stdout
    );
    let master = dir.path().join("master.cf");
    assert_eq!(
        out.stderr,
        format!(
            "mailgate: warning: {}:2: service cleanup runs without chroot\n",
            master.display()
        )
    );

    dir.write("main.cf", "smtpd_timeout = soon\nrelay_domains = a@b\n");
    let out = mailgate(&dir, &["-o", "relayhost_typo=x", "check"]);
    assert_eq!(out.code, 1);
    let main = dir.path().join("main.cf");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("mailgate: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(errors[0].starts_with(&format!(
        "mailgate: error: {}:1: smtpd_timeout: invalid time value",
        main.display()
    )));

    dir.write("main.cf", "");
    let out = mailgate(&dir, &["-o", "relayhost_typo=x", "check"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("mailgate: error: command line: unknown parameter \"relayhost_typo\""),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    dir.write("main.cf", "mynetwork = 10.0.0.0/8\n");
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("unknown parameter \"mynetwork\"")
            && out.stderr.contains("; did you mean \"mynetworks\"?"),
        "{}",
        out.stderr
    );

    let empty = TestDir::new();
    let out = mailgate(&empty, &["check"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("master.cf: cannot read"),
        "{}",
        out.stderr
    );
}

#[test]
fn config_shows_parameters() {
    let dir = TestDir::new();
    dir.write("master.cf", "smtp inet n - - - - smtpd\n");
    dir.write("main.cf", "relayhost = [10.0.0.1]\n");
    let out = mailgate(&dir, &["-o", "myorigin=example.com", "config", "-n"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "myorigin = example.com\nrelayhost = [10.0.0.1]\n"
    );

    let out = mailgate(&dir, &["config", "-d", "relayhost", "mail_owner"]);
    assert_eq!(out.stdout, "relayhost =\nmail_owner = mailgate\n");

    let out = mailgate(&dir, &["config", "relayhost", "no_such_param"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "relayhost = [10.0.0.1]\n");
    assert_eq!(
        out.stderr,
        "mailgate: warning: no_such_param: unknown parameter\n"
    );
    let out = mailgate(&dir, &["config", "relay_host"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "mailgate: warning: relay_host: unknown parameter; did you mean \"relayhost\"?\n"
        )
    );

    // The effective daemon_directory, not the empty default that means it.
    let out = mailgate(&dir, &["config", "daemon_directory"]);
    let beside = Path::new(env!("CARGO_BIN_EXE_mailgate")).parent().unwrap();
    assert_eq!(
        out.stdout,
        format!("daemon_directory = {}\n", beside.display())
    );
    let out = mailgate(&dir, &["config", "-d", "daemon_directory"]);
    assert_eq!(out.stdout, "daemon_directory =\n");

    // MAILGATE_CONFIG names the directory when -c does not.
    let output = Command::new(env!("CARGO_BIN_EXE_mailgate"))
        .args(["config", "-n"])
        .env("MAILGATE_CONFIG", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "relayhost = [10.0.0.1]\n"
    );

    let out = mailgate(&dir, &["config"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.lines().count() > 50);
    assert!(
        out.stdout
            .contains("\nqueue_directory = /var/spool/mailgate\n")
    );

    dir.write("main.cf", "relayhost = \"\nsmtpd_timeout = x\n");
    let out = mailgate(&dir, &["config"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("smtpd_timeout: invalid time value"));
}

fn sleeper() -> Child {
    Command::new("sleep").arg("30").spawn().unwrap()
}

/// Stands in for a running master: a process whose pid is in the pid file, with the
/// file locked (by this test process, which works the same for `mailgate`).
fn fake_master(dir: &TestDir) -> (Child, Flock<File>) {
    let child = sleeper();
    std::fs::write(dir.pid_file(), format!("{}\n", child.id())).unwrap();
    let lock = Flock::lock(
        File::open(dir.pid_file()).unwrap(),
        FlockArg::LockExclusiveNonblock,
    )
    .unwrap();
    (child, lock)
}

#[test]
fn status_stop_and_reload() {
    let dir = TestDir::new();
    dir.configure("");
    let not_running = "mailgate: the mail system is not running\n";
    for command in ["status", "stop", "reload"] {
        let out = mailgate(&dir, &[command]);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (1, not_running),
            "{command}"
        );
    }

    let (mut child, lock) = fake_master(&dir);
    let out = mailgate(&dir, &["status"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stderr,
        format!(
            "mailgate: the mail system is running: PID: {}\n",
            child.id()
        )
    );

    // SIGHUP ends `sleep`, which is how the test sees that it was sent.
    let out = mailgate(&dir, &["reload"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, "mailgate: refreshing the mail system\n")
    );
    child.wait().unwrap();
    drop(lock);

    let (child, lock) = fake_master(&dir);
    let reaper = std::thread::spawn(move || {
        let mut child = child;
        child.wait()
    });
    let out = mailgate(&dir, &["stop"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, "mailgate: stopping the mail system\n")
    );
    reaper.join().unwrap().unwrap();
    drop(lock);

    // A pid file that nobody locks is stale.
    let out = mailgate(&dir, &["status"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, not_running));

    // A configuration broken since the start does not hide a running master.
    let (mut child, lock) = fake_master(&dir);
    let main_cf = std::fs::read_to_string(dir.path().join("main.cf")).unwrap();
    dir.write("main.cf", &format!("{main_cf}smtpd_timeout = soon\n"));
    let out = mailgate(&dir, &["status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: the configuration in")
            && out.stderr.contains("has 1 error(s)")
            && out.stderr.ends_with(&format!(
                "mailgate: the mail system is running: PID: {}\n",
                child.id()
            )),
        "{}",
        out.stderr
    );
    child.kill().unwrap();
    child.wait().unwrap();
    drop(lock);
    let out = mailgate(&dir, &["status"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.ends_with(not_running), "{}", out.stderr);
}

#[test]
fn start_execs_the_master() {
    let dir = TestDir::new();
    let daemons = dir.path().join("daemons");
    std::fs::create_dir_all(&daemons).unwrap();
    let script = daemons.join("master");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/args\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.configure(&format!(
        "daemon_directory = {}\nmail_owner = mailgate-test-no-such-user\n",
        daemons.display()
    ));
    let root = nix::unistd::geteuid().is_root();

    let out = mailgate(&dir, &["start"]);
    if root {
        assert_eq!(out.code, 1);
        assert_eq!(
            out.stderr,
            "mailgate: fatal: mail_owner = mailgate-test-no-such-user: no such user; create it \
             with \"useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin \
             mailgate-test-no-such-user\"\n"
        );
        assert!(!daemons.join("args").exists());
    }

    let owner = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    let setting = format!("mail_owner={owner}");
    let out = mailgate(&dir, &["-o", &setting, "start"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    if !root {
        assert_eq!(
            out.stderr,
            "mailgate: warning: not running as root: the gateway runs unprivileged, without chroot\n"
        );
    }
    let args = std::fs::read_to_string(daemons.join("args")).unwrap();
    assert_eq!(
        args,
        format!("-c\n{}\n-o\n{setting}\n", dir.path().display())
    );

    // Errors in the configuration keep it from starting.
    std::fs::remove_file(daemons.join("args")).unwrap();
    let out = mailgate(&dir, &["-o", &setting, "-o", "smtpd_timeout=x", "start"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("mailgate: error: command line: smtpd_timeout")
    );
    assert!(!daemons.join("args").exists());

    // So does a running master.
    let (mut child, lock) = fake_master(&dir);
    let out = mailgate(&dir, &["-o", &setting, "start"]);
    assert_eq!(
        out.stderr,
        format!(
            "mailgate: fatal: the mail system is already running: PID: {}\n",
            child.id()
        )
    );
    drop(lock);
    child.kill().unwrap();
    child.wait().unwrap();

    // And a missing master program is named.
    std::fs::remove_file(&script).unwrap();
    let out = mailgate(&dir, &["-o", &setting, "start"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "mailgate: fatal: cannot run {}: ",
            script.display()
        )),
        "{}",
        out.stderr
    );
}

/// A message that once made the spam engine panic (a link with a Latin-1 byte
/// in a windows-1252 HTML part), a broken symlink and two ordinary messages:
/// `scan` scores every message it can read and names the one it cannot.
#[test]
fn scan_goes_on_past_a_bad_message() {
    let dir = TestDir::new();
    dir.configure("");
    let mail = dir.path().join("mail");
    std::fs::create_dir(&mail).unwrap();
    std::fs::write(mail.join("1-plain"), "Subject: lunch\n\nat noon?\n").unwrap();
    std::fs::write(
        mail.join("2-hostile"),
        b"Subject: x\nContent-Type: text/html; charset=windows-1252\n\n\
          <html><a href=\"./\xe9s.files/x.xml\">a</a><a href=\"www\xe9.x\">b</a></html>\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(mail.join("nowhere"), mail.join("3-broken")).unwrap();
    std::fs::write(mail.join("4-plain"), "Subject: report\n\nattached\n").unwrap();
    let out = mailgate(&dir, &["scan", mail.to_str().unwrap()]);
    let scored: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(scored.len(), 3, "{}{}", out.stdout, out.stderr);
    for (line, name) in scored.iter().zip(["1-plain", "2-hostile", "4-plain"]) {
        assert!(line.contains(name), "{line}");
    }
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("3-broken: No such file"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("1 message(s) could not be scored"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_knows_what_the_stats_and_web_services_need() {
    let dir = TestDir::new();
    dir.configure("");
    let master = "smtp inet n - - - - smtpd\n127.0.0.1:9155 inet n - - - 1 stats\n127.0.0.1:8025 inet n - - - 20 web\n";
    dir.write("master.cf", master);
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 1);
    for expected in [
        "service 127.0.0.1:9155: the stats service counts the lines of maillog_file, which is empty",
        "service 127.0.0.1:8025: web_admin_users is empty",
    ] {
        assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
    }
    dir.configure(&format!(
        "maillog_file = {0}/maillog\nweb_admin_users = admin@example.com\nweb_sasl_path = /run/dovecot/auth-client\n",
        dir.path().display()
    ));
    dir.write("master.cf", master);
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("web_sasl_path = /run/dovecot/auth-client: the web service is chrooted"),
        "{}",
        out.stderr
    );
    dir.configure(&format!(
        "maillog_file = {0}/maillog\nweb_admin_users = admin@example.com\n",
        dir.path().display()
    ));
    dir.write("master.cf", master);
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A directive in the site's own spam rule file that the engine does not
/// carry out is named by `check`, with file and line; a stock file's are not.
#[test]
fn check_names_site_spam_directives_it_does_not_carry_out() {
    let dir = TestDir::new();
    dir.write(
        "local.cf",
        "required_score 6\nrewrite_header Subject [SPAM]\nbody LOCAL_X /cheap pills/\n",
    );
    dir.configure(&format!(
        "content_scanner = scanner\nspam_stock_rules_directory =\nspam_bayes_directory =\n\
         spam_rules_files = {}/local.cf\n",
        dir.path().display()
    ));
    dir.write(
        "master.cf",
        "smtp inet n - - - - smtpd\ncleanup unix n - - - 0 cleanup\nscanner unix n - - - 4 scanner\n",
    );
    let out = mailgate(&dir, &["check"]);
    let expected = format!(
        "{}/local.cf:2: rewrite_header Subject [SPAM]: not implemented",
        dir.path().display()
    );
    assert!(out.stderr.contains(&expected), "{expected}: {}", out.stderr);
    assert!(!out.stderr.contains("required_score"), "{}", out.stderr);
}

/// docs/parameters.md is what `mailgate config --status` prints: the
/// table of every parameter's status cannot go stale.
#[test]
fn parameter_status_table_is_the_documented_one() {
    let dir = TestDir::new();
    dir.configure("");
    let out = mailgate(&dir, &["config", "--status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/parameters.md"),
    )
    .unwrap();
    assert!(
        out.stdout == doc,
        "docs/parameters.md is stale: run `mailgate config --status > docs/parameters.md`"
    );
    assert!(
        out.stdout
            .contains("| `virtual_alias_maps` |  | carried out |")
    );
    assert!(out.stdout.contains("| `smtpd_milters` |  | carried out |"));
    assert!(
        out.stdout
            .contains("| `non_smtpd_milters` |  | carried out |")
    );
    assert!(out.stdout.contains(
        "| `smtpd_client_new_tls_session_rate_limit` | `0` | **not carried out, refused when set**"
    ));
}

#[test]
fn check_knows_what_the_verify_service_needs() {
    let dir = TestDir::new();
    let main_cf = format!(
        "data_directory = {}/data\nrelay_domains = example.com\n\
         smtpd_recipient_restrictions = reject_unauth_destination, reject_unverified_recipient\n",
        dir.path().display()
    );
    dir.configure(&main_cf);
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("master.cf has no unix service \"verify\" (address_verify_service_name)"),
        "{}",
        out.stderr
    );
    let smtpd = "smtp inet n - - - - smtpd\ncleanup unix n - - - 0 cleanup\n";
    dir.write(
        "master.cf",
        &format!("{smtpd}verify unix - - y - - verify\n"),
    );
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("service verify: maxproc must be 1 when address_verify_map is a redb: file"),
        "{}",
        out.stderr
    );
    dir.write(
        "master.cf",
        &format!("{smtpd}verify unix - - y - 1 verify\n"),
    );
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // In memory or in Redis, a reload may overlap the old process.
    dir.configure(&format!(
        "{main_cf}address_verify_map =\nunverified_recipient_reject_code = 399\n"
    ));
    dir.write(
        "master.cf",
        &format!("{smtpd}verify unix - - y - - verify\n"),
    );
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "unverified_recipient_reject_code = 399: not a 2xx, 4xx or 5xx SMTP reply code"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("maxproc"), "{}", out.stderr);
}

#[test]
fn check_validates_processes_and_threads_per_service() {
    let dir = TestDir::new();
    dir.configure("mailgate_service_processes = fuor\nmailgate_service_threads = 0\n");
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 1);
    for expected in [
        "main.cf:3: mailgate_service_processes = fuor: expected auto or a number of processes from 1 to 256",
        "main.cf:4: mailgate_service_threads = 0: expected a number of threads from 1 to 256",
    ] {
        assert!(out.stderr.contains(expected), "{expected}\n{}", out.stderr);
    }
    // Once, not again for each service that inherits the value.
    assert_eq!(out.stderr.matches("= fuor").count(), 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("threads = 0").count(),
        1,
        "{}",
        out.stderr
    );
    // A number in main.cf is for the programs that can run several; a
    // one-process program asked for more by its own -o is an error, placed
    // at its master.cf line.
    dir.configure("mailgate_service_processes = 4\nmailgate_service_threads = 3\n");
    dir.write(
        "master.cf",
        "smtp inet n - - - - smtpd -o mailgate_service_processes=2\n\
         cleanup unix n - - - 0 cleanup\n\
         qmgr unix n - - 300 1 qmgr -o mailgate_service_processes=2\n",
    );
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(
            "master.cf:3: service qmgr: mailgate_service_processes = 2: qmgr runs as one process (only smtpd, cleanup, relay, scanner may run several)"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("mailgate_service").count(),
        1,
        "{}",
        out.stderr
    );
    dir.write(
        "master.cf",
        "smtp inet n - - - - smtpd -o mailgate_service_processes=2 -o mailgate_service_threads=x\n\
         cleanup unix n - - - 0 cleanup\n\
         qmgr unix n - - 300 1 qmgr\n",
    );
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("mailgate_service_threads") && out.stderr.contains("\"x\""),
        "{}",
        out.stderr
    );
    dir.write(
        "master.cf",
        "smtp inet n - - - - smtpd -o mailgate_service_processes=2\n\
         cleanup unix n - - - 0 cleanup\n\
         qmgr unix n - - 300 1 qmgr\n\
         anvil unix - - y - 1 anvil\n",
    );
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("counted in each"), "{}", out.stderr);
    // Without an anvil service, per-client limits are counted in each
    // smtpd process: said for a service that runs several.
    dir.configure("smtpd_client_connection_rate_limit = 30\n");
    dir.write(
        "master.cf",
        "smtp inet n - - - - smtpd -o mailgate_service_processes=2\n\
         cleanup unix n - - - 0 cleanup\n",
    );
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "master.cf:1: service smtp runs 2 smtpd processes and \
             master.cf has no anvil service: smtpd_client_connection_count_limit = 50, \
             smtpd_client_connection_rate_limit = 30 counted in each process"
        ),
        "{}",
        out.stderr
    );
    // With anvil they are counted over all of them: nothing to say.
    dir.write(
        "master.cf",
        "smtp inet n - - - - smtpd -o mailgate_service_processes=2\n\
         cleanup unix n - - - 0 cleanup\n\
         anvil unix - - y - 1 anvil\n",
    );
    let out = mailgate(&dir, &["check"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("counted in each"), "{}", out.stderr);
}
