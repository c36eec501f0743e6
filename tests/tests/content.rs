//! Content filtering end to end: header and body checks in cleanup, the
//! scanner service with a real clamd, banned attachments, spam levels and
//! the quarantine commands, all through SMTP against a real gateway.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use mailgate_tests::{Backend, Clamd, Client, EICAR, Gateway, message, wait_for, with_attachment};

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// A directory the scanner may be chrooted into: reachable by its user.
fn scanner_home() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// main.cf lines that turn the scanner on, with no Bayes store and no stock
/// rules, so every test sees the same scores.
fn scanner_settings(home: &Path) -> String {
    format!(
        "content_scanner = scanner\n\
         scanner_directory = {}\n\
         spam_bayes_directory =\n\
         spam_stock_rules_directory =\n\
         scanner_timeout = 20s\n",
        home.display()
    )
}

fn start_with_scanner(backend: &Backend, home: &Path, extra: &str) -> Gateway {
    let extra = format!("{}{extra}", scanner_settings(home));
    Gateway::configure(backend, &extra).with_scanner().launch()
}

fn send(gateway: &Gateway, message: &str) -> String {
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message("a@sender.example", &["b@example.com"], message);
    client.send("QUIT");
    reply
}

fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    writer.start_file(name, options).expect("zip entry");
    writer.write_all(data).expect("zip data");
    writer.finish().expect("zip").into_inner()
}

/// A minimal PE header: what "a Windows program" looks like to the scanner.
fn pe_program() -> Vec<u8> {
    let mut data = vec![0u8; 256];
    data[..2].copy_from_slice(b"MZ");
    data[60] = 128;
    data[128..132].copy_from_slice(b"PE\0\0");
    data
}

/// How a message reached clamd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transfer {
    /// The descriptor (FILDES): clamd logs the file it was passed, the
    /// sealed memfd smtpd made: `/memfd:message (deleted): OK`.
    Fildes,
    /// The bytes (INSTREAM): clamd logs `instream(local): OK`.
    Instream,
}

/// What clamd's log shows of the scans it made.
trait ScanLog {
    fn wait_for_scans(&self, count: usize, transfer: Transfer);
}

impl ScanLog for Clamd {
    /// Waits until clamd has logged `count` scan results (LogClean makes it
    /// log clean ones too), then checks that each arrived by `transfer`.
    fn wait_for_scans(&self, count: usize, transfer: Transfer) {
        let results = wait_for("clamd to log its scans", || {
            let log = fs::read_to_string(&self.log).ok()?;
            let results: Vec<String> = log
                .lines()
                .filter(|l| l.ends_with(": OK") || l.ends_with(" FOUND"))
                .map(str::to_string)
                .collect();
            (results.len() >= count).then_some(results)
        });
        assert_eq!(results.len(), count, "{results:#?}");
        for line in &results {
            let by = if line.starts_with("instream(") {
                Transfer::Instream
            } else if line.starts_with("/memfd:") {
                Transfer::Fildes
            } else {
                panic!("a scan of neither a stream nor a memfd: {line}")
            };
            assert_eq!(by, transfer, "{line}");
        }
    }
}

/// EICAR plain, zipped and in a MIME part is refused, clean mail passes,
/// with `extra` main.cf lines; clamd's log must show every one of those
/// scans arriving by `transfer`.
fn eicar_is_refused_and_clean_mail_passes(extra: &str, transfer: Transfer) {
    let backend = Backend::start();
    let home = scanner_home();
    let clamd = Clamd::start(home.path());
    let gateway = start_with_scanner(
        &backend,
        home.path(),
        &format!(
            "clamd_socket = unix:{}\nvirus_admin = postmaster@example.com\n{extra}",
            clamd.socket.display()
        ),
    );

    let plain = message("plain eicar", &format!("{EICAR}\nEICAR-PLAIN"));
    let reply = send(&gateway, &plain);
    assert!(reply.starts_with("554 5.7.1"), "plain EICAR: {reply}");
    assert!(
        reply.contains("virus found: Mailgate.Test.EICAR"),
        "{reply}"
    );

    let zipped = with_attachment(
        "EICAR-ZIPPED",
        "harmless.zip",
        "application/zip",
        &zip_of("eicar.txt", EICAR.as_bytes()),
    );
    let reply = send(&gateway, &zipped);
    assert!(reply.starts_with("554 5.7.1"), "zipped EICAR: {reply}");
    assert!(reply.contains("virus found"), "{reply}");

    let part = with_attachment("EICAR-PART", "eicar.txt", "text/plain", EICAR.as_bytes());
    let reply = send(&gateway, &part);
    assert!(
        reply.starts_with("554 5.7.1"),
        "EICAR in a MIME part: {reply}"
    );

    let reply = send(&gateway, &message("clean", "CLEAN-MARKER"));
    assert!(reply.starts_with("250"), "clean mail: {reply}");
    let got = backend.wait_for_message("CLEAN-MARKER");
    assert_eq!(got.header("X-Virus-Scanned"), ["mailgate"]);

    // The administrator hears about each virus, from the null sender; the
    // (forged) sender never does.
    let notice = backend.wait_for_message("stopped because it contains a virus");
    assert_eq!(notice.rcpt_to.len(), 1);
    assert!(
        notice.rcpt_to[0].contains("postmaster@example.com"),
        "{notice:?}"
    );
    assert!(notice.mail_from.contains("<>"), "{notice:?}");
    assert!(
        backend
            .messages()
            .iter()
            .all(|m| m.rcpt_to.iter().all(|r| !r.contains("sender.example"))),
        "a notice went to the sender"
    );
    for marker in ["EICAR-PLAIN", "EICAR-ZIPPED", "EICAR-PART"] {
        assert!(
            backend
                .messages()
                .iter()
                .all(|m| !m.message.contains(marker)),
            "{marker} was delivered"
        );
    }
    // Three viruses and one clean message, each scanned once.
    clamd.wait_for_scans(4, transfer);
}

#[test]
fn eicar_plain_zipped_and_in_a_mime_part_is_refused_and_clean_mail_passes() {
    // The default, clamd_transfer = auto: FILDES over the Unix socket.
    eicar_is_refused_and_clean_mail_passes("", Transfer::Fildes);
}

#[test]
fn eicar_is_refused_and_clean_mail_passes_with_clamd_transfer_instream() {
    eicar_is_refused_and_clean_mail_passes("clamd_transfer = instream\n", Transfer::Instream);
}

#[test]
fn clamd_transfer_mistakes_are_found_by_check() {
    let backend = Backend::start();
    let home = scanner_home();
    let cases = [
        (
            "clamd_socket = unix:/srv/clamd.ctl\nclamd_transfer = sideways\n",
            "clamd_transfer: invalid value \"sideways\" (expected auto, instream or fildes)",
        ),
        (
            "clamd_socket = inet:127.0.0.1:3310\nclamd_transfer = fildes\n",
            "clamd_transfer: fildes passes the message's file descriptor, which only works \
             over a Unix socket, but clamd_socket = inet:127.0.0.1:3310",
        ),
    ];
    for (lines, wanted) in cases {
        let extra = format!("{}{lines}", scanner_settings(home.path()));
        let gateway = Gateway::configure(&backend, &extra).with_scanner();
        let (code, _, err) = gateway.admin(&["check"]);
        assert_eq!(code, 1, "{lines}: {err}");
        assert!(err.contains(wanted), "{lines}: {err}");
    }
}

#[test]
fn clamd_down_or_no_scanner_means_4xx_never_unscanned_delivery() {
    let backend = Backend::start();
    let home = scanner_home();
    let gateway = start_with_scanner(
        &backend,
        home.path(),
        &format!(
            "clamd_socket = unix:{}/clamd/missing.sock\n",
            home.path().display()
        ),
    );
    let reply = send(&gateway, &message("no clamd", "NO-CLAMD"));
    assert!(reply.starts_with("451 4.7.1"), "clamd down: {reply}");

    // The scanner service cannot start (its directory cannot be made): the
    // master keeps its socket, nobody answers, cleanup times out.
    let backend2 = Backend::start();
    let gateway2 = start_with_scanner(
        &backend2,
        Path::new("/dev/null/scanner"),
        "scanner_timeout = 2s\n",
    );
    let reply = send(&gateway2, &message("no scanner", "NO-SCANNER"));
    assert!(reply.starts_with("451 4.7.1"), "no scanner: {reply}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(backend.messages().is_empty() && backend2.messages().is_empty());

    // content_scanner naming a service master.cf does not run is a
    // configuration error, found before anything runs.
    let gateway3 = Gateway::configure(&backend2, "content_scanner = scanner\n");
    let (code, _, err) = gateway3.admin(&["check"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("content_scanner = scanner: master.cf has no unix service"),
        "{err}"
    );
}

#[test]
fn banned_attachments_are_refused() {
    let backend = Backend::start();
    let home = scanner_home();
    let gateway = start_with_scanner(&backend, home.path(), "");
    let cases: Vec<(&str, String)> = vec![
        (
            "exe by name",
            with_attachment("B1", "setup.exe", "application/octet-stream", b"data"),
        ),
        (
            "double extension",
            with_attachment("B2", "invoice.pdf.exe", "application/pdf", b"data"),
        ),
        (
            "program whatever its name",
            with_attachment("B3", "notes.txt", "text/plain", &pe_program()),
        ),
        (
            "declared type",
            with_attachment("B4", "file.bin", "application/x-msdownload", b"data"),
        ),
        (
            "inside a zip",
            with_attachment(
                "B5",
                "docs.zip",
                "application/zip",
                &zip_of("docs/screen.scr", b"data"),
            ),
        ),
    ];
    for (what, text) in &cases {
        let reply = send(&gateway, text);
        assert!(reply.starts_with("554 5.7.1"), "{what}: {reply}");
        assert!(reply.contains("banned attachment"), "{what}: {reply}");
    }
    let pdf = with_attachment(
        "OK-PDF",
        "report.pdf",
        "application/pdf",
        b"%PDF-1.4 report",
    );
    assert!(send(&gateway, &pdf).starts_with("250"));
    backend.wait_for_message("OK-PDF");
}

#[test]
fn gtube_is_refused_and_ham_passes_with_its_spam_headers() {
    let backend = Backend::start();
    let home = scanner_home();
    let gateway = start_with_scanner(&backend, home.path(), "");
    let reply = send(
        &gateway,
        &message("test", &format!("{GTUBE}\nGTUBE-MARKER")),
    );
    assert!(reply.starts_with("554 5.7.1"), "GTUBE: {reply}");
    assert!(reply.contains("spam"), "{reply}");

    assert!(send(&gateway, &message("lunch", "HAM-MARKER")).starts_with("250"));
    let ham = backend.wait_for_message("HAM-MARKER");
    assert_eq!(ham.header("X-Spam-Flag"), ["NO"]);
    assert_eq!(ham.header("X-Spam-Score").len(), 1);
    let status = ham.header("X-Spam-Status");
    assert!(status[0].starts_with("No, score="), "{status:?}");
    assert_eq!(ham.header("Subject"), ["lunch"]);
}

#[test]
fn spam_at_tag2_is_tagged_and_spam_lovers_get_it() {
    let backend = Backend::start();
    let home = scanner_home();
    let extra = "spam_tag2_level = -50\nspam_kill_level = 500\n\
                 spam_lovers_maps = inline:{ lover@example.com=yes }\n";
    let gateway = start_with_scanner(&backend, home.path(), extra);
    assert!(send(&gateway, &message("offer", "TAGGED-MARKER")).starts_with("250"));
    let tagged = backend.wait_for_message("TAGGED-MARKER");
    assert_eq!(tagged.header("X-Spam-Flag"), ["YES"]);
    assert_eq!(tagged.header("Subject"), ["***SPAM*** offer"]);

    // Above the kill level a lover still gets it; everyone else refuses it.
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let gtube = message("gtube", &format!("{GTUBE}\nLOVED-MARKER"));
    let reply = client.send_message("a@sender.example", &["lover@example.com"], &gtube);
    assert!(reply.starts_with("250"), "spam lover: {reply}");
    backend.wait_for_message("LOVED-MARKER");
}

#[test]
fn header_and_body_checks_from_the_seeds_work_as_written() {
    let backend = Backend::start();
    let gateway = Gateway::configure(
        &backend,
        "header_checks = regexp:header_checks\nbody_checks = regexp:body_checks\n",
    );
    fs::write(
        gateway.path("header_checks"),
        "/^Subject: .*retire early/ REJECT\n\
         /^Subject: not now/ REJECT 4.7.1 try again later\n\
         /^Subject: hold me/ HOLD\n\
         /^Subject: drop me/ DISCARD\n\
         /^X-Secret:/ IGNORE\n\
         /^Subject: (.*)/ PREPEND X-Original-Subject: $1\n",
    )
    .expect("header_checks");
    fs::write(
        gateway.path("body_checks"),
        "/^TV[nopqr]....[AB]..A.A....*AAAA...*AAAA/ REJECT\n",
    )
    .expect("body_checks");
    let gateway = gateway.launch();

    let reply = send(&gateway, &message("How to retire early", "RETIRE"));
    assert!(reply.starts_with("550 5.7.1"), "header check: {reply}");
    // A 4.x.x code defers, as Postfix's cleanup answers it.
    let reply = send(&gateway, &message("not now", "NOT-NOW"));
    assert!(
        reply.starts_with("451 4.7.1 try again later"),
        "header check: {reply}"
    );

    let program = with_attachment(
        "BODY-CHECK",
        "data.bin",
        "application/octet-stream",
        &pe_program(),
    );
    let reply = send(&gateway, &program);
    assert!(reply.starts_with("550 5.7.1"), "body check: {reply}");

    let reply = send(&gateway, &message("drop me", "DISCARDED"));
    assert!(reply.starts_with("250"), "DISCARD answers 250: {reply}");

    let reply = send(&gateway, &message("hold me", "HELD"));
    assert!(reply.starts_with("250"), "HOLD answers 250: {reply}");
    wait_for("a message in hold/", || {
        (fs::read_dir(gateway.spool("hold")).ok()?.count() == 1).then_some(())
    });

    let text = "From: a@sender.example\nTo: b@example.com\nSubject: fine\nX-Secret: 42\n\nEDITED\n";
    assert!(send(&gateway, text).starts_with("250"));
    let got = backend.wait_for_message("EDITED");
    assert!(got.header("X-Secret").is_empty());
    assert_eq!(got.header("X-Original-Subject"), ["fine"]);
    assert!(
        backend
            .messages()
            .iter()
            .all(|m| !m.message.contains("DISCARDED") && !m.message.contains("HELD"))
    );
}

#[test]
fn quarantine_list_show_release_delete() {
    let backend = Backend::start();
    let home = scanner_home();
    let gateway = start_with_scanner(&backend, home.path(), "banned_action = quarantine\n");
    for marker in ["Q-ONE", "Q-TWO"] {
        let text = with_attachment(marker, "run.exe", "application/octet-stream", b"x");
        assert!(send(&gateway, &text).starts_with("250"));
    }
    let ids: Vec<String> = wait_for("two quarantined messages", || {
        let mut ids: Vec<String> = fs::read_dir(gateway.spool("quarantine"))
            .ok()?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".tmp"))
            .collect();
        ids.sort();
        (ids.len() == 2).then_some(ids)
    });
    let dir = gateway.dir.path().display().to_string();
    let admin = |args: &[&str]| {
        let output = Command::new(mailgate_tests::bin_dir().join("mailgate"))
            .args(["-c", &dir, "quarantine"])
            .args(args)
            .output()
            .expect("mailgate quarantine");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, listing, _) = admin(&["list"]);
    assert!(ok);
    for id in &ids {
        assert!(listing.contains(id.as_str()), "{listing}");
    }
    assert!(listing.contains("banned attachment: run.exe"), "{listing}");

    let (ok, shown, _) = admin(&["show", &ids[0]]);
    assert!(ok && shown.contains("run.exe"), "{shown}");

    let (ok, _, err) = admin(&["release", &ids[0]]);
    assert!(ok, "{err}");
    let released = wait_for("the released message at the backend", || {
        backend
            .messages()
            .into_iter()
            .find(|m| m.message.contains("Q-ONE") || m.message.contains("Q-TWO"))
    });
    assert!(released.rcpt_to[0].contains("b@example.com"));

    let (ok, _, err) = admin(&["delete", &ids[1]]);
    assert!(ok, "{err}");
    let (ok, listing, _) = admin(&["list"]);
    assert!(ok && listing.trim().is_empty(), "{listing}");
    let (ok, _, err) = admin(&["release", &ids[1]]);
    assert!(!ok && err.contains("no such message"), "{err}");
    assert_eq!(backend.messages().len(), 1);
}

#[test]
fn check_lists_the_spam_rules_it_cannot_evaluate() {
    let backend = Backend::start();
    let home = scanner_home();
    // The stock rules, as an installed spamassassin package provides them.
    let extra = format!(
        "{}spam_stock_rules_directory = /usr/share/spamassassin\n",
        scanner_settings(home.path())
    );
    let gateway = Gateway::configure(&backend, &extra).with_scanner();
    let (code, _, err) = gateway.admin(&["check"]);
    assert_eq!(code, 0, "{err}");
    let count_line = err
        .lines()
        .find(|l| l.contains("spam rules cannot be evaluated and never hit"))
        .unwrap_or_else(|| panic!("no count of unevaluated rules: {err}"));
    let count: usize = count_line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a number");
    let listed = err
        .lines()
        .filter(|l| l.contains("/usr/share/spamassassin/") && l.contains(": eval:"))
        .count();
    assert!(
        count > 0 && listed > 0 && listed <= count,
        "{count} counted, {listed} listed: {err}"
    );
}

#[test]
fn learning_while_the_scanner_runs_reloads_it_with_a_fresh_snapshot() {
    let backend = Backend::start();
    let home = scanner_home();
    let bayes = tempfile::tempdir().expect("tempdir");
    let extra = format!("spam_bayes_directory = {}\n", bayes.path().display());
    let gateway = start_with_scanner(&backend, home.path(), &extra);
    let mail = tempfile::tempdir().expect("tempdir");
    for n in 0..3 {
        fs::write(
            mail.path().join(format!("{n}.eml")),
            message(&format!("cheap pills {n}"), &format!("BUY-NOW-{n}")),
        )
        .expect("message file");
    }
    let folder = mail.path().display().to_string();
    let (code, out, err) = gateway.admin(&["learn", "--spam", &folder]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("store: 3 spam"), "{out}");
    assert!(err.contains("refreshing the mail system"), "{err}");
    gateway.wait_for_log("reload -- version");
    // The new scanner took a snapshot holding what was just learned.
    let snapshot = bayes.path().join("scanner").join("bayes.redb");
    wait_for("the scanner's fresh snapshot", || {
        let learned = fs::metadata(bayes.path().join("bayes.redb")).ok()?.len();
        (fs::metadata(&snapshot).ok()?.len() == learned).then_some(())
    });
    let (code, _, err) = gateway.admin(&["learn", "--forget", "--spam", &folder]);
    assert_eq!(code, 0, "learning again while the new scanner runs: {err}");
    let reply = send(&gateway, &message("after", "AFTER-LEARN"));
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("AFTER-LEARN");
}

#[test]
fn auto_learn_journals_clear_cases_and_learn_sync_folds_them_in() {
    let backend = Backend::start();
    let home = scanner_home();
    let bayes = tempfile::tempdir().expect("tempdir");
    let rules = home.path().join("local.cf");
    fs::write(
        &rules,
        "header AL_HEAD Subject =~ /autolearn-spam/\nscore AL_HEAD 7\n\
         body AL_BODY /AUTOLEARN-BODY/\nscore AL_BODY 7\n",
    )
    .expect("local.cf");
    let extra = format!(
        "spam_bayes_directory = {}\nspam_rules_files = {}\n\
         spam_bayes_auto_learn = yes\nspam_kill_level = 100\n\
         mailgate_service_processes = 2\n",
        bayes.path().display(),
        rules.display()
    );
    let gateway = start_with_scanner(&backend, home.path(), &extra);
    for (subject, marker) in [("autolearn-spam", "AUTOLEARN-BODY"), ("lunch", "PLAIN-HAM")] {
        let reply = send(&gateway, &message(subject, marker));
        assert!(reply.starts_with("250"), "{reply}");
    }
    let status = |marker: &str| {
        let m = backend.wait_for_message(marker).message;
        m.lines()
            .skip_while(|l| !l.starts_with("X-Spam-Status:"))
            .take_while(|l| l.starts_with("X-Spam-Status:") || l.starts_with('\t'))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(status("AUTOLEARN-BODY").contains("autolearn=spam"));
    assert!(status("PLAIN-HAM").contains("autolearn=ham"));
    let journals = || {
        fs::read_dir(bayes.path().join("journal"))
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let before = journals();
    assert_eq!(
        before.len(),
        2,
        "two scanner processes, a journal each: {before:?}"
    );

    let (code, out, err) = gateway.admin(&["learn", "--sync"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("learned 2 auto-learned message(s)"), "{out}");
    // A journal stays while its scanner lives (it may still append); once
    // the reload has replaced that scanner, the next sync removes it.
    gateway.wait_for_log("reload -- version");
    for journal in &before {
        let old_pid: i32 = journal
            .file_name()
            .and_then(|n| n.to_str()?.split('-').nth(1)?.parse().ok())
            .expect("autolearn-PID-NANOS");
        wait_for("the old scanner to exit", || {
            (!Path::new(&format!("/proc/{old_pid}")).exists()).then_some(())
        });
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = gateway.admin(&["learn", "--ham", &empty.path().display().to_string()]);
    assert_eq!(code, 0, "{err}");
    for journal in &before {
        assert!(
            !journal.exists(),
            "the exited scanner's journal is removed: {journal:?}"
        );
    }
    assert!(out.contains("store: 1 spam, 1 ham"), "{out}");
}
