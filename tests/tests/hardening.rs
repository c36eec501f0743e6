//! The hardening that is not one service's protocol: the master never
//! follows a link it does not own, `mailgate scan` and `learn` give up
//! root before they parse mail, a stop with every service on is quick and
//! kills no worker, and the log names every process by syslog_name and
//! shows control characters escaped.
//!
//! Tests that change ownership or trace the programs need root, and strace
//! (./run-tests installs it and runs them as root).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailgate_tests::{Backend, Clamd, Client, Gateway, bin_dir, is_root, message, wait_for};

fn need_root() {
    assert!(
        is_root(),
        "this test changes ownership and needs root (./run-tests runs as root)"
    );
}

fn uid_of(name: &str) -> u32 {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user {name} (./run-tests creates it)"))
        .uid
        .as_raw()
}

/// A file only root may touch: what a followed link would change.
fn victim(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("victim");
    fs::write(&path, "root's\n").expect("victim");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn assert_untouched(path: &Path, mode: u32) {
    let meta = fs::symlink_metadata(path).expect("victim");
    assert_eq!(meta.uid(), 0, "{} changed owner", path.display());
    assert_eq!(
        meta.mode() & 0o7777,
        mode,
        "{} changed mode",
        path.display()
    );
}

#[test]
fn a_spool_directory_planted_as_a_link_is_never_followed() {
    need_root();
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    // mail_owner owns queue_directory (an old install, say) and has put a
    // link where incoming/ should be.
    let outside = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let spool = gateway.spool("");
    fs::create_dir(&spool).expect("spool");
    let mail = nix::unistd::User::from_name("mailgate")
        .ok()
        .flatten()
        .expect("mailgate");
    nix::unistd::chown(&spool, Some(mail.uid), Some(mail.gid)).expect("chown");
    std::os::unix::fs::symlink(outside.path(), spool.join("incoming")).expect("symlink");

    let mut master = Command::new(bin_dir().join("master"))
        .arg("-c")
        .arg(gateway.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("master");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = master.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = master.kill();
            let _ = master.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|s| !s.success()),
        "the master started on a planted link"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut master.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    let said = format!("{stderr}{}", gateway.log());
    assert!(said.contains("is a link or not a directory"), "{said}");
    assert_untouched(outside.path(), 0o755);
    // And queue_directory is root's again: mail_owner cannot plant another.
    assert_eq!(fs::metadata(&spool).expect("spool").uid(), 0);
}

#[test]
fn a_socket_swapped_for_a_link_after_bind_is_not_followed() {
    need_root();
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    let outside = tempfile::tempdir().expect("tempdir");
    let target = victim(outside.path());
    // strace holds every bind(2) of the master for a second after it
    // returns: time to swap the new socket for a link, as an attacker
    // racing the master would.
    let mut master = Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "-e", "trace=bind"])
        .args(["-e", "inject=bind:delay_exit=1000000"])
        .arg(bin_dir().join("master"))
        .arg("-c")
        .arg(gateway.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (Debian package strace) must be installed");
    let socket = gateway.spool("private/smtp");
    wait_for("the master to bind private/smtp", || {
        fs::symlink_metadata(&socket)
            .ok()
            .filter(|m| m.file_type().is_socket())
            .map(drop)
    });
    fs::rename(&socket, gateway.spool("private/smtp.bound")).expect("rename");
    std::os::unix::fs::symlink(&target, &socket).expect("symlink");
    gateway.wait_for_log("daemon started");
    // The master (strace's child) stops; strace follows it out.
    let pid = fs::read_to_string(gateway.spool("pid/master.pid")).expect("pid file");
    let pid = nix::unistd::Pid::from_raw(pid.trim().parse().expect("pid"));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = master.wait();
    assert_untouched(&target, 0o600);
    // The sockets the master made are mail_owner's from the start: relay's
    // 0600 (only qmgr's uid calls it), cleanup's 0660 (smtpd, in
    // mail_owner's group, calls it).
    let bound = fs::symlink_metadata(gateway.spool("private/smtp.bound")).expect("socket");
    assert_eq!(bound.uid(), uid_of("mailgate"));
    assert_eq!(bound.mode() & 0o777, 0o600);
    let cleanup = fs::symlink_metadata(gateway.spool("public/cleanup")).expect("socket");
    assert_eq!(cleanup.uid(), uid_of("mailgate"));
    assert_eq!(cleanup.mode() & 0o777, 0o660);
}

/// What strace saw `mailgate` do, with `args`: (exit status, stdout, trace).
fn traced_mailgate(config: &Path, args: &[&str]) -> (i32, String, String) {
    let trace = config.join("trace");
    let output = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args(["-e", "trace=setresuid,landlock_restrict_self,seccomp"])
        .arg(bin_dir().join("mailgate"))
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("strace (Debian package strace) must be installed");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        fs::read_to_string(&trace).unwrap_or_default(),
    )
}

#[test]
fn scan_and_learn_run_by_root_drop_to_scanner_owner_before_reading_mail() {
    need_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path();
    fs::write(
        config.join("main.cf"),
        format!(
            "queue_directory = {0}/spool\nspam_bayes_directory = {0}/bayes\n\
             spam_stock_rules_directory =\n",
            config.display()
        ),
    )
    .expect("main.cf");
    fs::write(config.join("master.cf"), "").expect("master.cf");
    // Root's mail, in a directory only root may enter.
    let mail = config.join("mail");
    fs::create_dir(&mail).expect("mail");
    fs::set_permissions(&mail, fs::Permissions::from_mode(0o700)).expect("chmod");
    for n in 0..2 {
        let path = mail.join(format!("{n}.eml"));
        fs::write(&path, message(&format!("cheap pills {n}"), "BUY")).expect("message");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let mail = mail.display().to_string();
    let scanner = uid_of("mailgate-scan");
    let dropped = format!("setresuid({scanner}, {scanner}, {scanner})");
    for args in [vec!["scan", &mail], vec!["learn", "--spam", &mail]] {
        let (code, out, trace) = traced_mailgate(config, &args);
        assert_eq!(code, 0, "{args:?}: {out}\n{trace}");
        assert!(
            trace
                .lines()
                .any(|l| l.contains(&dropped) && l.trim_end().ends_with("= 0")),
            "{args:?} kept root:\n{trace}"
        );
        assert!(
            trace.contains("landlock_restrict_self(") && trace.contains("SECCOMP_SET_MODE_FILTER"),
            "{args:?}: no Landlock or seccomp:\n{trace}"
        );
        if args[0] == "scan" {
            assert_eq!(out.lines().count(), 2, "{out}");
        } else {
            assert!(out.contains("learned 2 of 2 message(s)"), "{out}");
        }
    }
}

#[test]
fn stop_is_quick_and_no_worker_dies_of_its_filter_with_every_service_on() {
    let backend = Backend::start();
    let home = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let clamd = Clamd::start(home.path());
    let bayes = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "content_scanner = scanner\nscanner_directory = {home}\nclamd_socket = unix:{clamd}\n\
         spam_stock_rules_directory =\nspam_bayes_directory = {bayes}\n\
         spam_bayes_auto_learn = yes\nmaster_drain_time = 30s\n",
        home = home.path().display(),
        clamd = clamd.socket.display(),
        bayes = bayes.path().display()
    );
    let gateway = Gateway::configure(&backend, &extra).with_scanner();
    // A store with something in it: the scanner opens a snapshot of it.
    let corpus = tempfile::tempdir().expect("tempdir");
    fs::write(corpus.path().join("1.eml"), message("pills", "BUY")).expect("message");
    let (code, _, err) = gateway.admin(&["learn", "--spam", &corpus.path().display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let gateway = gateway.launch();
    let send = |marker: &str| {
        let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
        let reply = client.send_message(
            "a@sender.example",
            &["bob@example.com"],
            &message("every service", marker),
        );
        assert!(reply.starts_with("250"), "{reply}");
        backend.wait_for_message(marker);
    };
    send("BEFORE-RELOAD");
    let old_scanner = gateway.worker_pids("scanner");
    let (code, _, err) = gateway.admin(&["reload"]);
    assert_eq!(code, 0, "{err}");
    gateway.wait_for_log("reload -- version");
    wait_for("a new scanner", || {
        let now = gateway.worker_pids("scanner");
        (!now.is_empty() && now.iter().all(|p| !old_scanner.contains(p))).then_some(())
    });
    send("AFTER-RELOAD");

    let started = Instant::now();
    let (code, _, err) = gateway.admin(&["stop"]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{err}");
    assert!(
        took < Duration::from_secs(5),
        "stop took {took:?} with every service on"
    );
    let log = gateway.log();
    for line in log.lines() {
        assert!(
            !line.contains("killed by signal") && !line.contains("did not stop within"),
            "{line}"
        );
    }
}

#[test]
fn syslog_name_names_every_process() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "syslog_name = mailgate-test");
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["bob@example.com"],
        &message("named", "NAMED-MARKER"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("NAMED-MARKER");
    gateway.wait_for_log("mailgate-test/relay[");
    let log = gateway.log();
    for program in ["master", "smtpd", "cleanup", "qmgr", "relay"] {
        assert!(
            log.contains(&format!(" mailgate-test/{program}[")),
            "no {program} line named by syslog_name:\n{log}"
        );
    }
    assert!(!log.contains(" mailgate/"), "{log}");
}

#[test]
fn control_characters_from_attachment_names_are_escaped_in_the_log() {
    let backend = Backend::start();
    let home = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let extra = format!(
        "content_scanner = scanner\nscanner_directory = {}\nspam_bayes_directory =\n\
         spam_stock_rules_directory =\n",
        home.path().display()
    );
    let gateway = Gateway::configure(&backend, &extra).with_scanner().launch();
    // A file name with ESC [2J (clear the screen of whoever reads the log)
    // and BEL, in RFC 2231's encoding.
    let text = "From: a@sender.example\nTo: b@example.com\nSubject: attachment\n\
                MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"XX\"\n\n\
                --XX\nContent-Type: text/plain\n\nhello\n--XX\n\
                Content-Type: application/octet-stream\n\
                Content-Disposition: attachment; filename*=utf-8''evil%1B%5B2J%07name.exe\n\
                Content-Transfer-Encoding: base64\n\nZGF0YQ==\n--XX--\n";
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message("a@sender.example", &["bob@example.com"], text);
    assert!(reply.starts_with("554"), "{reply}");
    let line = gateway.wait_for_log("name.exe");
    // Escaped (by the scanner for its reply, or by the log for any line).
    assert!(
        line.to_ascii_lowercase()
            .contains("evil\\x1b[2j\\x07name.exe"),
        "{line:?}"
    );
    let raw = fs::read(gateway.path("maillog")).expect("maillog");
    assert!(
        !raw.iter().any(|&b| b == 0x1b || b == 0x07),
        "a raw control character reached the log"
    );
}
