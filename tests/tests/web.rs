//! The web page in a real headless Chromium: logins checked by a real
//! Dovecot's auth service, the overview and graphs, the queue's hold,
//! release and delete through qmgr, a quarantined message released from
//! the page and delivered, the log, CSRF refusals. Screenshots of each page
//! go to target/tmp/web-screenshots/.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use mailgate_tests::browser::Browser;
use mailgate_tests::dovecot::Dovecot;
use mailgate_tests::tls::TestPki;
use mailgate_tests::{Backend, Client, Gateway, free_port, message, wait_for};

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "correct horse";

/// Where the screenshots go: the test output directory.
fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn with_exe(marker: &str) -> String {
    format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: invoice\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"XX\"\n\n--XX\nContent-Type: text/plain\n\n\
         {marker}\n--XX\nContent-Type: application/octet-stream; name=\"invoice.pdf.exe\"\n\
         Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\n\
         Content-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAA==\n--XX--\n"
    )
}

#[test]
fn the_web_page_in_chromium() {
    let backend = Backend::start();
    let scanner_home = tempfile::tempdir().unwrap();
    fs::set_permissions(scanner_home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let certificates = tempfile::tempdir().unwrap();
    TestPki::new(&["localhost", "127.0.0.1"]).write(certificates.path(), "");
    let (cert, key) = (
        certificates.path().join("cert.pem"),
        certificates.path().join("key.pem"),
    );
    let dead = free_port();
    let web_port = free_port();
    let gateway = Gateway::configure(
        &backend,
        &format!(
            "content_scanner = scanner\nscanner_directory = {}\nspam_bayes_directory =\n\
             spam_stock_rules_directory =\nbanned_action = quarantine\n\
             relay_domains = example.com, dead.example\n\
             transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{}, dead.example=smtp:[127.0.0.1]:{dead} }}\n\
             web_admin_users = {ADMIN}\nweb_tls_cert_file = {}\nweb_tls_key_file = {}\n",
            scanner_home.path().display(),
            backend.port,
            cert.display(),
            key.display()
        ),
    )
    .with_scanner();
    gateway.add_master_cf(&format!("127.0.0.1:{} inet n - y - 1 stats", free_port()));
    gateway.add_master_cf(&format!("127.0.0.1:{web_port} inet n - y - 20 web"));
    let gateway = gateway.launch();
    // Dovecot checks the logins, on its auth socket inside the spool, as
    // Postfix's smtpd_sasl_path = private/auth.
    let auth = gateway.spool("private").join("auth");
    let _dovecot = Dovecot::builder()
        .users(&[(ADMIN, PASSWORD), ("user@example.com", PASSWORD)])
        .auth_socket(&auth)
        .start();

    // Traffic: one delivered, one deferred (to a closed port), one
    // quarantined for its banned attachment, one refused.
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message("s@example.com", &["ok@example.com"], &message("hi", "OK-1"));
    assert!(reply.starts_with("250"), "{reply}");
    let reply = client.transaction(
        "s@example.com",
        &["y@dead.example"],
        &message("d", "DEFERRED-1"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let reply = client.transaction(
        "s@example.com",
        &["b@example.com"],
        &with_exe("QUARANTINED-1"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    client.send("QUIT");
    let mut outsider = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    let reply = outsider.send_message("a@sender.example", &["z@other.org"], &message("r", "R"));
    assert!(reply.starts_with("554"), "{reply}");
    backend.wait_for_message("OK-1");
    wait_for("the quarantined message", || {
        (fs::read_dir(gateway.spool("quarantine")).ok()?.count() == 1).then_some(())
    });
    let quarantined = fs::read_dir(gateway.spool("quarantine"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let deferred = wait_for("the deferred message", || {
        let entry = fs::read_dir(gateway.spool("deferred")).ok()?.next()?.ok()?;
        entry.file_name().into_string().ok()
    });

    let shots = screenshots();
    let base = format!("https://127.0.0.1:{web_port}");
    let browser = Browser::start();

    // Not logged in: every page leads to the login.
    browser.goto(&format!("{base}/queue"));
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    browser.screenshot(&shots.join("1-login.png"));
    let login = |user: &str, password: &str| {
        browser.goto(&format!("{base}/login"));
        browser.type_into("input[name=user]", user);
        browser.type_into("input[name=password]", password);
        browser.click("#login");
    };
    login(ADMIN, "wrong");
    browser.wait_for("#error");
    assert_eq!(browser.text("#error"), "Login failed.", "{}", gateway.log());

    // A good password, but not an administrator of this page.
    login("user@example.com", PASSWORD);
    browser.wait_for("#error");
    assert_eq!(browser.text("#error"), "Login failed.");
    login(ADMIN, PASSWORD);
    browser.wait_for("#counts");

    // The overview: the counters of this run and the day's graphs.
    wait_for("the overview to count the traffic", || {
        browser.goto(&format!("{base}/"));
        let received = browser.text("#row-received td");
        (received == "3").then_some(())
    });
    assert_eq!(browser.text("#row-rejected-relay td"), "1");
    assert_eq!(browser.text("#row-quarantined td"), "1");
    browser.screenshot(&shots.join("2-overview.png"));
    browser.goto(&format!("{base}/graphs"));
    let loaded = browser.script(
        "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length",
    );
    assert_eq!(loaded, 8, "all eight graphs load");
    browser.screenshot(&shots.join("3-graphs.png"));
    browser.goto(&format!("{base}/graph/traffic-day.svg"));
    assert!(browser.source().contains(">received 3 (max "));

    // The queue: hold, release and delete the deferred message.
    browser.goto(&format!("{base}/queue"));
    assert!(browser.exists(&format!("#msg-{deferred}")));
    browser.screenshot(&shots.join("4-queue.png"));
    browser.click(&format!("#hold-{deferred}"));
    let held = format!("{deferred}: placed on hold");
    browser.wait_for_text("#flash", |t| t == held);
    assert!(gateway.spool("hold").join(&deferred).exists());
    browser.click(&format!("#release-{deferred}"));
    let released = format!("{deferred}: released from hold");
    browser.wait_for_text("#flash", |t| t == released);
    browser.goto(&format!("{base}/queue/{deferred}"));
    assert!(browser.text("#content").contains("DEFERRED-1"));
    browser.screenshot(&shots.join("5-queued-message.png"));
    browser.click(&format!("#delete-{deferred}"));
    let deleted = format!("{deferred}: deleted");
    browser.wait_for_text("#flash", |t| t.starts_with(&deleted));
    wait_for("the deleted message to leave the queue", || {
        let gone = ["incoming", "active", "deferred", "hold"]
            .iter()
            .all(|q| !gateway.spool(q).join(&deferred).exists());
        gone.then_some(())
    });

    // A forged form (the token changed by the test) is refused.
    browser.goto(&format!("{base}/quarantine"));
    browser
        .script("document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged')");
    browser.click(&format!("#delete-{quarantined}"));
    browser.wait_for_text("body", |t| t.contains("does not match the session"));
    assert!(gateway.spool("quarantine").join(&quarantined).exists());
    // So is a post from another site (no session cookie, no token).
    browser.goto(&format!(
        "data:text/html,<form method=post action={base}/quarantine><input name=id value={quarantined}>\
         <input name=action value=delete><button id=go>go</button></form>"
    ));
    browser.click("#go");
    browser.wait_for_text("body", |t| t.contains("not logged in"));
    assert!(gateway.spool("quarantine").join(&quarantined).exists());

    // The quarantine: look at the message, then release it to its recipient.
    browser.goto(&format!("{base}/quarantine"));
    assert!(
        browser
            .text(&format!("#msg-{quarantined}"))
            .contains("banned attachment")
    );
    browser.screenshot(&shots.join("6-quarantine.png"));
    browser.goto(&format!("{base}/quarantine/{quarantined}"));
    assert!(browser.text("#content").contains("QUARANTINED-1"));
    browser.screenshot(&shots.join("7-quarantined-message.png"));
    browser.click(&format!("#release-{quarantined}"));
    let released = format!("{quarantined}: released to its recipients");
    browser.wait_for_text("#flash", |t| t == released);
    let delivered = backend.wait_for_message("QUARANTINED-1");
    assert_eq!(delivered.rcpt_to, ["<b@example.com>"]);

    // The log shows what happened, logins included.
    browser.goto(&format!("{base}/log"));
    let log = browser.text("#log");
    assert!(log.contains(&format!("web: {ADMIN} logged in")), "{log}");
    assert!(log.contains(&format!("{quarantined}: released")), "{log}");
    browser.screenshot(&shots.join("8-log.png"));

    browser.click("header form button");
    browser.wait_for("#login");
    browser.goto(&format!("{base}/"));
    assert!(browser.url().ends_with("/login"));

    for shot in fs::read_dir(&shots).unwrap().flatten() {
        let size = shot.metadata().unwrap().len();
        assert!(size > 5_000, "{} is {size} bytes", shot.path().display());
    }
    println!("screenshots in {}", shots.display());
    assert!(
        !gateway.log().contains("killed by signal"),
        "{}",
        gateway.log()
    );
}
