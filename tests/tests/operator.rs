//! The operator's view: learning from IMAP folders on a real Dovecot, the
//! Debian package installed into a scratch root and started, `./install`,
//! and the README's administration commands after a quickstart.

use std::fs;
use std::process::{Command, Output};

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
