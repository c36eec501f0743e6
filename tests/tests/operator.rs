//! The operator's view: learning from IMAP folders on a real Dovecot, the
//! Debian package installed into a scratch root and started, `./install`,
//! and the README's administration commands after a quickstart.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mailgate_tests::bin_dir;
use mailgate_tests::imapd::Dovecot;

fn text(output: &Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn spam(n: usize) -> String {
    format!(
        "From: Pharmacy <deals{n}@cheap-meds.example>\nTo: ann@example.com\n\
         Subject: Cheap pills discount offer {n}\nMessage-ID: <spam{n}@cheap-meds.example>\n\n\
         Buy cheap pills now, viagra cialis discount, limited time offer number {n}.\n\
         Click here to order without prescription, lowest prices guaranteed, act now.\n"
    )
}

fn ham(n: usize) -> String {
    format!(
        "From: Bob <bob@example.com>\nTo: ann@example.com\nSubject: Meeting notes {n}\n\
         Message-ID: <ham{n}@example.com>\n\n\
         Hi Ann, here are the notes from the project meeting {n}: the budget review\n\
         moves to Thursday, and the quarterly report draft is in the shared folder.\n"
    )
}

#[test]
fn learn_from_dovecot_imap_folders() {
    let dovecot = Dovecot::start(&[("ann", "s3cret pass")], None);
    for n in 0..3 {
        dovecot.deliver("ann", "Junk", &spam(n));
        dovecot.deliver("ann", "NotJunk", &ham(n));
    }
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("master.cf"), "smtp inet n - n - - smtpd\n").unwrap();
    fs::write(
        dir.path().join("main.cf"),
        format!(
            "queue_directory = {0}/spool\nspam_bayes_directory = {0}/bayes\nspam_stock_rules_directory =\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let learn = |args: &[&str], password: Option<&str>| {
        let mut command = Command::new(bin_dir().join("mailgate"));
        command.arg("-c").arg(dir.path()).arg("learn").args(args);
        command.env_remove("MAILGATE_IMAP_PASSWORD");
        if let Some(password) = password {
            command.env("MAILGATE_IMAP_PASSWORD", password);
        }
        text(&command.output().expect("run mailgate learn"))
    };
    let ca = dovecot.certificate.to_str().unwrap();
    let junk = format!("imaps://ann@127.0.0.1:{}/Junk", dovecot.imaps_port);

    // Spam from Junk over IMAPS, the password from the environment.
    let (code, out, err) = learn(&["--spam", "--ca-file", ca, &junk], Some("s3cret pass"));
    assert_eq!(code, 0, "{err}\n{}", dovecot.log());
    assert!(
        out.contains("learned 3 of 3 new message(s)") && out.contains("store: 3 spam, 0 ham"),
        "{out}"
    );
    // A second run skips what was learned (the messages carry a keyword).
    let (code, out, err) = learn(&["--spam", "--ca-file", ca, &junk], Some("s3cret pass"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("learned 0 of 0 new message(s)"), "{out}");
    assert_eq!(dovecot.count("ann", "Junk"), 3);

    // Ham from NotJunk over IMAP with STARTTLS, the password from a file,
    // moved away once learned.
    let password = dir.path().join("imap-password");
    fs::write(&password, "s3cret pass\n").unwrap();
    let not_junk = format!("imap://ann@127.0.0.1:{}/NotJunk", dovecot.imap_port);
    let (code, out, err) = learn(
        &[
            "--ham",
            "--password-file",
            password.to_str().unwrap(),
            "--ca-file",
            ca,
            "--move-to",
            "Learned",
            &not_junk,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}\n{}", dovecot.log());
    assert!(
        out.contains("learned 3 of 3 new message(s)")
            && out.contains("moved to Learned")
            && out.contains("store: 3 spam, 3 ham"),
        "{out}"
    );
    assert_eq!(dovecot.count("ann", "NotJunk"), 0);
    assert_eq!(dovecot.count("ann", "Learned"), 3);

    // --delete empties what it learned.
    dovecot.deliver("ann", "Junk", &spam(7));
    let (code, out, err) = learn(
        &["--spam", "--delete", "--ca-file", ca, &junk],
        Some("s3cret pass"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("learned 1 of 1 new message(s)") && out.contains("store: 4 spam, 3 ham"),
        "{out}"
    );
    wait_until_expunged(&dovecot, 3);

    // A wrong password fails, without showing it; no password at all too;
    // a certificate nobody vouches for is refused.
    let (code, _, err) = learn(&["--spam", "--ca-file", ca, &junk], Some("wrong"));
    assert_eq!(code, 1);
    assert!(err.contains("LOGIN") && !err.contains("wrong"), "{err}");
    let (code, _, err) = learn(&["--spam", "--ca-file", ca, &junk], None);
    assert_eq!(code, 1);
    assert!(err.contains("MAILGATE_IMAP_PASSWORD"), "{err}");
    let other = tempfile::tempdir().unwrap();
    let (stranger, _) = mailgate_tests::imapd::self_signed(other.path());
    let (code, _, err) = learn(
        &["--spam", "--ca-file", stranger.to_str().unwrap(), &junk],
        Some("s3cret pass"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("TLS"), "{err}");
}

fn wait_until_expunged(dovecot: &Dovecot, expected: usize) {
    mailgate_tests::wait_for("the deleted message to leave Junk", || {
        (dovecot.count("ann", "Junk") == expected).then_some(())
    });
}

/// The repository's top directory.
fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// Builds the Debian package from the programs the tests use (no second
/// release build), quickly compressed.
fn build_package(out: &Path, version: &str) -> PathBuf {
    let output = Command::new(top().join("packaging/debian/build"))
        .arg(bin_dir())
        .arg(out)
        .env("VERSION", version)
        .env("DEB_COMPRESSION", "gzip")
        .env("DEB_LEVEL", "1")
        .output()
        .expect("packaging/debian/build");
    let (code, stdout, stderr) = text(&output);
    assert_eq!(code, 0, "{stderr}");
    PathBuf::from(stdout.trim())
}

/// A scratch root dpkg can install into: an empty database that knows the
/// package's dependencies are present (they are, on this host, which runs
/// the installed programs), and the account files of a fresh system.
fn scratch_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dpkg = root.path().join("var/lib/dpkg");
    fs::create_dir_all(dpkg.join("info")).unwrap();
    fs::create_dir_all(dpkg.join("updates")).unwrap();
    fs::write(dpkg.join("available"), "").unwrap();
    let mut status = String::new();
    for package in ["libc6", "libgcc-s1", "passwd"] {
        let version = Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", package])
            .output()
            .unwrap();
        status.push_str(&format!(
            "Package: {package}\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\n\
             Maintainer: Debian\nVersion: {}\nDescription: present on the host\n\n",
            String::from_utf8_lossy(&version.stdout)
        ));
        fs::write(dpkg.join("info").join(format!("{package}.list")), "").unwrap();
    }
    fs::write(dpkg.join("status"), status).unwrap();
    fs::create_dir_all(root.path().join("etc")).unwrap();
    fs::create_dir_all(root.path().join("var/log")).unwrap();
    fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n",
    )
    .unwrap();
    fs::write(root.path().join("etc/group"), "root:x:0:\n").unwrap();
    root
}

fn dpkg(root: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        // The maintainer scripts run here, with DPKG_ROOT set to the root.
        .arg("--force-script-chrootless")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("dpkg");
    text(&output)
}

/// Runs `f` on a thread inside the network namespace of process `pid`.
fn in_netns<T: Send + 'static>(pid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let ns = fs::File::open(format!("/proc/{pid}/ns/net")).expect("netns");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in the namespace")
}

#[test]
fn the_debian_package_installs_upgrades_starts_and_purges() {
    assert!(
        mailgate_tests::is_root(),
        "installing a package with its maintainer scripts needs root (run-tests runs as root)"
    );
    let out = tempfile::tempdir().unwrap();
    let deb = build_package(out.path(), "0.1.0-1");
    let root = scratch_root();
    let r = root.path();
    let (code, _, err) = dpkg(r, &["--install", deb.to_str().unwrap()]);
    assert_eq!(code, 0, "dpkg --install: {err}");
    let (_, status, _) = dpkg(r, &["--status", "mailgate"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert!(
        status.contains("/etc/mailgate/main.cf "),
        "main.cf is a conffile: {status}"
    );

    // The layout: the command in /usr/sbin, the workers in daemon_directory.
    assert!(r.join("usr/sbin/mailgate").is_file());
    for worker in [
        "master", "smtpd", "cleanup", "qmgr", "relay", "scanner", "greylist", "verify", "stats",
        "web", "tlskeys",
    ] {
        assert!(
            r.join("usr/lib/mailgate").join(worker).is_file(),
            "{worker}"
        );
    }
    let main_cf = fs::read_to_string(r.join("etc/mailgate/main.cf")).unwrap();
    assert!(main_cf.contains("\ndaemon_directory = /usr/lib/mailgate\n"));
    assert!(main_cf.contains("\nqueue_directory = /var/spool/mailgate\n"));
    assert!(r.join("var/spool/mailgate").is_dir());
    assert!(r.join("etc/logrotate.d/mailgate").is_file());
    // The unit is installed and enabled, not started.
    assert!(r.join("lib/systemd/system/mailgate.service").is_file());
    let wanted = r.join("etc/systemd/system/multi-user.target.wants/mailgate.service");
    assert_eq!(
        fs::read_link(&wanted).expect("enabled"),
        Path::new("/lib/systemd/system/mailgate.service")
    );
    // The users, made by postinst in the root's own account files.
    let passwd = fs::read_to_string(r.join("etc/passwd")).unwrap();
    for user in [
        "mailgate:",
        "mailgate-smtpd:",
        "mailgate-relay:",
        "mailgate-scan:",
        "mailgate-tls:",
    ] {
        assert!(passwd.contains(&format!("\n{user}")), "{passwd}");
    }
    // The manual pages, generated from the programs.
    let page = Command::new("zcat")
        .arg(r.join("usr/share/man/man5/mailgate.cf.5.gz"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&page.stdout).contains("\\fBrelay_domains\\fR (default:"));
    assert!(r.join("usr/share/man/man8/mailgate.8.gz").is_file());

    // The installed mailgate passes check on the installed configuration.
    let mailgate = r.join("usr/sbin/mailgate");
    let config = r.join("etc/mailgate");
    let output = Command::new(&mailgate)
        .arg("-c")
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&output);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("ok: {}: 8 services", config.display())),
        "{stdout}"
    );

    // And the installed gateway starts on it: the paths it names are moved
    // into the scratch root, and it runs in a network namespace of its
    // own, where port 25 is free.
    let relocated = [
        format!("daemon_directory={}", r.join("usr/lib/mailgate").display()),
        format!("queue_directory={}", r.join("var/spool/mailgate").display()),
        format!("maillog_file={}", r.join("var/log/mailgate.log").display()),
    ];
    let admin = |command: &str| {
        let mut c = Command::new(&mailgate);
        c.arg("-c").arg(&config);
        for setting in &relocated {
            c.arg("-o").arg(setting);
        }
        text(&c.arg(command).output().unwrap())
    };
    let mut start = Command::new("unshare");
    start
        .args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(&mailgate)
        .arg("-c")
        .arg(&config);
    for setting in &relocated {
        start.arg("-o").arg(setting);
    }
    let mut gateway = start
        .arg("start")
        .stdout(Stdio::null())
        .spawn()
        .expect("unshare (util-linux) and ip (iproute2)");
    let pid = gateway.id();
    let banner = mailgate_tests::wait_for("the installed gateway's smtpd on port 25", || {
        in_netns(pid, || {
            let mut stream = std::net::TcpStream::connect("127.0.0.1:25").ok()?;
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .ok()?;
            let mut line = [0u8; 512];
            let n = stream.read(&mut line).ok()?;
            let _ = stream.write_all(b"QUIT\r\n");
            Some(String::from_utf8_lossy(&line[..n]).into_owned())
        })
    });
    assert!(banner.starts_with("220 "), "{banner}");
    let (code, _, err) = admin("status");
    assert_eq!(code, 0, "{err}");
    let metrics = in_netns(pid, || {
        mailgate_tests::wait_for("the stats service's /metrics", || {
            let mut stream = std::net::TcpStream::connect("127.0.0.1:9155").ok()?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
            let mut body = String::new();
            stream.read_to_string(&mut body).ok()?;
            Some(body)
        })
    });
    assert!(metrics.contains("mailgate_received_total "), "{metrics}");
    let (code, _, err) = admin("stop");
    assert_eq!(code, 0, "{err}");
    assert!(gateway.wait().unwrap().success());

    // An upgrade keeps a changed configuration (a conffile) without asking.
    let changed = format!("{main_cf}relay_domains = example.com\n");
    fs::write(r.join("etc/mailgate/main.cf"), &changed).unwrap();
    let newer = build_package(out.path(), "0.1.0-2");
    let (code, _, err) = dpkg(r, &["--install", newer.to_str().unwrap()]);
    assert_eq!(code, 0, "upgrade: {err}");
    assert_eq!(
        fs::read_to_string(r.join("etc/mailgate/main.cf")).unwrap(),
        changed
    );
    let (_, status, _) = dpkg(r, &["--status", "mailgate"]);
    assert!(status.contains("Version: 0.1.0-2"), "{status}");
    assert!(
        fs::read_link(&wanted).is_ok(),
        "still enabled after the upgrade"
    );

    // Purge takes everything but the users away.
    let (code, _, err) = dpkg(r, &["--purge", "mailgate"]);
    assert_eq!(code, 0, "purge: {err}");
    for gone in [
        "usr/sbin/mailgate",
        "usr/lib/mailgate",
        "etc/mailgate/main.cf",
        "var/spool/mailgate",
        "etc/systemd/system/multi-user.target.wants/mailgate.service",
    ] {
        assert!(
            fs::symlink_metadata(r.join(gone)).is_err(),
            "{gone} is left after purge"
        );
    }
}

#[test]
fn install_puts_the_rc_d_script_and_keeps_the_configuration() {
    let dest = tempfile::tempdir().unwrap();
    let install = |extra: &[&str]| {
        let output = Command::new(top().join("install"))
            .arg(format!("BINDIR={}", bin_dir().display()))
            .arg(format!("DESTDIR={}", dest.path().display()))
            .arg("INIT=rc.d")
            .args(extra)
            .output()
            .expect("./install");
        text(&output)
    };
    let (code, out, err) = install(&[]);
    assert_eq!(code, 0, "{err}");
    let d = dest.path();
    assert!(d.join("usr/local/sbin/mailgate").is_file());
    assert!(d.join("usr/local/libexec/mailgate/master").is_file());
    assert!(d.join("usr/local/share/man/man8/mailgate.8.gz").is_file());
    let main_cf = fs::read_to_string(d.join("usr/local/etc/mailgate/main.cf")).unwrap();
    assert!(main_cf.contains("\ndaemon_directory = /usr/local/libexec/mailgate\n"));
    let rc = fs::read_to_string(d.join("usr/local/etc/rc.d/mailgate")).unwrap();
    assert!(rc.contains("mailgate_program=\"/usr/local/sbin/mailgate\""));
    assert!(rc.contains("procname=\"/usr/local/libexec/mailgate/master\""));
    assert!(rc.contains(": ${mailgate_config:=\"/usr/local/etc/mailgate\"}"));
    let syntax = Command::new("sh")
        .arg("-n")
        .arg(d.join("usr/local/etc/rc.d/mailgate"))
        .status()
        .unwrap();
    assert!(syntax.success());
    assert!(out.contains("rc.d script in"), "{out}");
    // No users with DESTDIR; a second run keeps the configuration.
    fs::write(d.join("usr/local/etc/mailgate/main.cf"), "# mine\n").unwrap();
    let (code, out, err) = install(&["PREFIX=/usr/local"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("keeping"), "{out}");
    assert_eq!(
        fs::read_to_string(d.join("usr/local/etc/mailgate/main.cf")).unwrap(),
        "# mine\n"
    );
    let (code, _, err) = install(&["BAD-NAME=x"]);
    assert_eq!(code, 2, "{err}");
}

/// The first ```sh block after `marker` in the README, line by line.
fn readme_block(readme: &str, marker: &str) -> Vec<String> {
    let after = &readme[readme
        .find(marker)
        .unwrap_or_else(|| panic!("README: no {marker:?}"))..];
    let block = after.split("```sh\n").nth(1).expect("a sh block");
    let block = block.split("```").next().unwrap();
    block.lines().map(str::to_string).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn readme_commands_work_as_written_after_the_quickstart() {
    // A checkout: the quickstart, the bundled configuration, and a
    // target/release that holds the programs these tests use.
    let checkout = tempfile::tempdir().unwrap();
    let c = checkout.path();
    fs::set_permissions(c, fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(top().join("quickstart"), c.join("quickstart")).unwrap();
    copy_dir(&top().join("etc"), &c.join("etc"));
    fs::create_dir_all(c.join("target")).unwrap();
    std::os::unix::fs::symlink(bin_dir(), c.join("target/release")).unwrap();

    let readme = fs::read_to_string(top().join("README.md")).unwrap();
    let arrive = readme_block(&readme, "To see a message\narrive");
    let admin = readme_block(&readme, "<!-- administration commands: tested -->");
    assert!(
        admin.iter().any(|l| l.starts_with("mailgate stop")),
        "{admin:?}"
    );
    // Each README line runs as written, in one shell, its status recorded.
    let run = |lines: &[String]| -> String {
        lines
            .iter()
            .map(|line| {
                let quoted = line.replace('\'', "'\\''");
                format!("echo '>>> {quoted}'\n{line}\necho \"<<< $?\"\n")
            })
            .collect()
    };
    let script = format!(
        "set -u\n\
         ip link set lo up\n\
         ./quickstart --no-build > quickstart.out 2>&1 &\n\
         quickstart=$!\n\
         for i in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/2525) 2>/dev/null && break; sleep 0.05; done\n\
         {}\
         for i in $(seq 600); do grep -q 'status=sent' run/maillog && break; sleep 0.05; done\n\
         for i in $(seq 600); do target/release/mailgate -c run/etc stats --json | grep -q '\"total\":{{\"banned\":0,\"bounced\":0,\"deferred\":0,\"delivered\":1' && break; sleep 0.05; done\n\
         {}\
         wait $quickstart\n\
         echo \"quickstart exited $?\"\n\
         kill $(jobs -p) 2>/dev/null\n",
        run(&arrive),
        run(&admin)
    );
    fs::write(c.join("readme.sh"), script).unwrap();
    // Its own network namespace: the quickstart's fixed ports are free
    // there whatever else runs on this machine.
    let output = Command::new("unshare")
        .args(["--net", "--", "bash", "readme.sh"])
        .current_dir(c)
        .output()
        .expect("unshare (util-linux)");
    let (_, stdout, stderr) = text(&output);
    let quickstart = fs::read_to_string(c.join("quickstart.out")).unwrap_or_default();
    let context = format!("{stdout}\n--- stderr\n{stderr}\n--- quickstart\n{quickstart}");
    // Every line succeeded.
    let mut outputs: Vec<(String, String)> = Vec::new();
    for chunk in stdout.split(">>> ").skip(1) {
        let (line, rest) = chunk.split_once('\n').unwrap_or((chunk, ""));
        let (output, status) = rest.rsplit_once("<<< ").expect("status");
        assert_eq!(
            status.lines().next(),
            Some("0"),
            "`{line}` failed:\n{context}"
        );
        outputs.push((line.to_string(), output.to_string()));
    }
    assert_eq!(outputs.len(), arrive.len() + admin.len(), "{context}");
    let output_of = |prefix: &str| {
        outputs
            .iter()
            .find(|(line, _)| line.starts_with(prefix))
            .map(|(_, out)| out.clone())
            .unwrap_or_else(|| panic!("no README line {prefix}"))
    };
    assert!(output_of("mailgate check").starts_with("ok: "), "{context}");
    assert!(
        output_of("mailgate config -n")
            .contains(&format!("queue_directory = {}/run/spool", c.display())),
        "{context}"
    );
    assert!(
        !output_of("mailgate config daemon_directory")
            .trim()
            .ends_with('=')
    );
    let table = output_of("mailgate stats  ");
    let received = table.lines().find(|l| l.starts_with("received "));
    assert_eq!(
        received.map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["received", "1", "1", "1", "1", "1", "1"]),
        "{context}"
    );
    assert!(c.join("run/traffic-day.svg").is_file() && c.join("run/trouble-year.svg").is_file());
    assert!(
        output_of("curl").contains("\nmailgate_received_total 1\n"),
        "{context}"
    );
    assert!(stdout.contains("quickstart exited 0"), "{context}");
    // The quickstart said how to administer it, with its own paths.
    assert!(
        quickstart.contains(&format!(
            "export PATH=\"{0}/target/release:$PATH\" MAILGATE_CONFIG=\"{0}/run/etc\"",
            c.display()
        )),
        "{quickstart}"
    );
    assert!(
        quickstart.contains("status=sent"),
        "it shows the log: {quickstart}"
    );
}
