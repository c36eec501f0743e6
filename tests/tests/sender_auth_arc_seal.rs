//! ARC sealing (RFC 8617, arc_sealing): mail from outside that the
//! scanner checked is delivered with the gateway's ARC set over the
//! message as changed (Subject tag, X-Spam and Authentication-Results
//! headers), signed by tlskeys with a key `mailgate dkim keygen` made;
//! python3-dkim's arcverify (dkimpy), reading the keys from a real DNS
//! server (dnsmasq), verifies the chain on the message the backend
//! received: cv=none from the gateway alone, cv=pass over a valid chain
//! made by dkimpy's arcsign, cv=fail over a broken one.

use std::fs;

use mailgate_tests::dkim::{DkimKey, arc_sealed, dkim_key, dkim_signed};
use mailgate_tests::{Backend, Client, DnsServer, Gateway, Received, Record};

/// The strings of the TXT record `mailgate dkim keygen` printed, and the
/// name it goes under.
fn keygen(gw: &Gateway, domain: &str, selector: &str) -> (String, Vec<String>) {
    let dir = gw.dir.path().display().to_string();
    let (status, stdout, stderr) =
        gw.admin(&["dkim", "keygen", domain, selector, "-t", "rsa", "-D", &dir]);
    assert_eq!(status, 0, "{stderr}");
    let (name, rest) = stdout.split_once(" IN TXT ").expect("a TXT record line");
    let strings = rest.split('"').skip(1).step_by(2).map(str::to_string);
    (name.trim_end_matches('.').to_string(), strings.collect())
}

/// python3-dkim's arcverify on `message`, reading the keys from `dns`
/// (in a private mount namespace whose /etc/resolv.conf names it): the
/// chain's validation, "pass", "fail" or "none", and the whole output.
fn arcverify(dns: &DnsServer, dir: &std::path::Path, message: &str) -> (String, String) {
    let (_, text) = mailgate_tests::dkim::dkimpy_verify("arcverify -v", dns, dir, message);
    // "arc verification: cv=b'pass' success"
    let cv = text
        .split("arc verification: cv=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("")
        .trim_start_matches('b')
        .trim_matches('\'')
        .to_string();
    (cv, text)
}

fn message(marker: &str) -> String {
    format!(
        "From: Alice <alice@orig.test>\nTo: list@fwd.test\nSubject: arc {marker}\n\
         Message-ID: <{marker}@orig.test>\n\nHello.\n{marker}\n"
    )
}

/// The instance, cv= and d= of each ARC-Seal, top first.
fn seals(received: &Received) -> Vec<(String, String, String)> {
    received
        .header("ARC-Seal")
        .iter()
        .map(|seal| {
            let tag = |name: &str| {
                seal.split(';')
                    .filter_map(|t| t.trim().split_once('='))
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_default()
            };
            (tag("i"), tag("cv"), tag("d"))
        })
        .collect()
}

fn gateway(backend: &Backend, key: &DkimKey) -> (Gateway, DnsServer, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let gw = Gateway::configure(backend, "")
        .with_scanner()
        .with_master_cf("tlskeys unix - - y - - tlskeys\n");
    let (name, txt) = keygen(&gw, "gw.test", "arc1");
    assert_eq!(name, "arc1._domainkey.gw.test");
    let dns = DnsServer::on_port_53(&[
        Record::Zone("test"),
        Record::Zone("example.org"),
        Record::Zone("example.com"),
        Record::Txt("sel1._domainkey.orig.test", &key.txt),
        Record::Txt("sel1._domainkey.fwd.test", &key.txt),
        Record::Txt(&name, &txt.join(",")),
    ]);
    let d = gw.dir.path().display().to_string();
    fs::write(
        gw.dir.path().join("dkim_keys"),
        format!("arc gw.test:arc1:{d}/arc1.gw.test.pem\n"),
    )
    .unwrap();
    // Every message is tagged as spam (Subject and X-Spam headers), none
    // refused: the seal has to cover what the gateway changed.
    gw.add_main_cf(&format!(
        "dns_nameservers = {}\ncontent_scanner = scanner\nscanner_directory = {}\n\
         spam_bayes_directory =\nspam_stock_rules_directory =\nscanner_timeout = 60s\n\
         spam_tag2_level = -50\nspam_kill_level = 500\ndkim_verify = yes\n\
         dkim_key_table = texthash:{d}/dkim_keys\narc_sealing = yes\narc_seal_key = arc\n\
         tlskeys_directory = {d}/tlskeys\n",
        dns.nameserver(),
        home.path().display(),
    ));
    (gw, dns, home)
}

#[test]
fn checked_mail_is_arc_sealed_and_the_chain_verifies_with_dkimpy() {
    if !mailgate_tests::is_root() {
        panic!("this test needs root (arcverify runs in a mount namespace of its own)");
    }
    let backend = Backend::start();
    let key = dkim_key();
    let (gw, dns, _home) = gateway(&backend, &key);
    // Sealing answers check's warning about the Subject tag.
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(!stderr.contains("without arc_sealing"), "{stderr}");
    let gw = gw.launch();
    let work = tempfile::tempdir().unwrap();
    let send = |text: &str, marker: &str| {
        let mut client = Client::connect(gw.port, "127.0.0.2").unwrap();
        let reply = client.send_message("list-bounces@fwd.test", &["b@example.com"], text);
        assert!(reply.starts_with("250"), "{reply}\n{}", gw.log());
        backend.wait_for_message(marker)
    };

    // No chain: the gateway's set alone, cv=none, over the tagged Subject.
    let signed = dkim_signed(&key, "orig.test", &message("marker-seal-none"));
    let received = send(&signed, "marker-seal-none");
    assert!(
        received.header("Subject")[0].starts_with("***SPAM*** arc"),
        "{}",
        received.message
    );
    assert_eq!(
        seals(&received),
        [("1".into(), "none".into(), "gw.test".into())]
    );
    let aar = &received.header("ARC-Authentication-Results")[0];
    assert!(aar.starts_with("i=1; gw.example.com;"), "{aar}");
    assert!(aar.contains("arc=none"), "{aar}");
    let (cv, out) = arcverify(&dns, work.path(), &received.message);
    assert_eq!(cv, "pass", "{out}\n{}", received.message);
    // Changed after the gateway sealed it, the same message fails: the
    // check above can fail.
    let changed = received.message.replace("Hello.", "Hello, changed.");
    let (cv, out) = arcverify(&dns, work.path(), &changed);
    assert_eq!(cv, "fail", "{out}");

    // A valid chain from the forwarder: sealed with cv=pass, and the
    // whole chain (its set and ours) verifies.
    let signed = dkim_signed(&key, "orig.test", &message("marker-seal-pass"));
    let received = send(&arc_sealed(&key, &signed), "marker-seal-pass");
    assert_eq!(
        seals(&received),
        [
            ("2".into(), "pass".into(), "gw.test".into()),
            ("1".into(), "none".into(), "fwd.test".into())
        ]
    );
    assert!(received.header("Subject")[0].starts_with("***SPAM*** "));
    let aar = received.header("ARC-Authentication-Results");
    assert!(
        aar.iter()
            .any(|a| a.starts_with("i=2; gw.example.com;") && a.contains("arc=pass")),
        "{aar:?}"
    );
    let (cv, out) = arcverify(&dns, work.path(), &received.message);
    assert_eq!(cv, "pass", "{out}\n{}", received.message);

    // A chain broken before it arrived (the body changed after the
    // forwarder sealed it): sealed with cv=fail, which ends the chain
    // (dkimpy: "ARC-Seal[2] reported failure"); the gateway's own
    // signatures over it verify.
    let sealed = arc_sealed(
        &key,
        &dkim_signed(&key, "orig.test", &message("marker-seal-x")),
    );
    let broken = sealed
        .replace("Hello.", "Hello, changed.")
        .replace("marker-seal-x", "marker-seal-fail");
    let received = send(&broken, "marker-seal-fail");
    assert_eq!(
        seals(&received),
        [
            ("2".into(), "fail".into(), "gw.test".into()),
            ("1".into(), "none".into(), "fwd.test".into())
        ]
    );
    let (cv, out) = arcverify(&dns, work.path(), &received.message);
    assert_ne!(cv, "pass", "{out}");
    assert!(out.contains("ARC-Seal[2] reported failure"), "{out}");
    let ours = out
        .split("{'instance': 2,")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .unwrap_or_default();
    assert!(
        ours.contains("'cv': b'fail'")
            && ours.contains("'ams-valid': True")
            && ours.contains("'as-valid': True"),
        "{out}"
    );

    // The organisation's own mail (mynetworks) is not checked, so not
    // sealed.
    let mut client = Client::connect(gw.port, "127.0.0.1").unwrap();
    let reply = client.send_message(
        "alice@example.com",
        &["b@example.com"],
        &message("marker-seal-own"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        backend
            .wait_for_message("marker-seal-own")
            .header("ARC-Seal")
            .is_empty()
    );
}

/// The sealing key is tlskeys': without the service, or with a key
/// dkim_key_table does not list, or without dkim_verify, check refuses
/// the configuration, naming the line.
#[test]
fn check_refuses_inconsistent_sealing_settings() {
    let backend = Backend::start();
    let gw = Gateway::configure(&backend, "content_scanner = scanner\ndkim_verify = yes\n")
        .with_scanner();
    let dir = gw.dir.path().to_path_buf();
    fs::write(dir.join("keys"), "arc gw.test:arc1:arc.pem\n").unwrap();
    fs::write(dir.join("arc.pem"), "read by tlskeys only\n").unwrap();
    let main_cf = gw.path("main.cf");
    let base = fs::read_to_string(&main_cf).unwrap();
    let line = base.lines().count() + 1;
    let with = |extra: &str| {
        fs::write(
            &main_cf,
            format!(
                "{base}arc_sealing = yes\ndkim_key_table = texthash:{}/keys\n{extra}",
                dir.display()
            ),
        )
        .unwrap();
        gw.admin(&["check"])
    };
    let (status, _, stderr) = with("arc_seal_key = arc\n");
    assert_ne!(status, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "main.cf:{line}: arc_sealing = yes: the sealing key is held by the tlskeys service"
        )),
        "{stderr}"
    );
    let (status, _, stderr) = with("arc_seal_key = other\n");
    assert_ne!(status, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "main.cf:{line}: arc_seal_key = other: dkim_key_table does not list that key"
        )),
        "{stderr}"
    );
    let (status, _, stderr) = with("arc_seal_key = arc\ndkim_verify = no\n");
    assert_ne!(status, 0, "{stderr}");
    assert!(
        stderr.contains("arc_sealing = yes needs dkim_verify = yes"),
        "{stderr}"
    );
    // With the service, the same settings pass.
    let master_cf = gw.path("master.cf");
    let services = fs::read_to_string(&master_cf).unwrap();
    fs::write(
        &master_cf,
        format!("{services}tlskeys unix - - y - - tlskeys\n"),
    )
    .unwrap();
    let (status, _, stderr) = with("arc_seal_key = arc\n");
    assert_eq!(status, 0, "{stderr}");
}
