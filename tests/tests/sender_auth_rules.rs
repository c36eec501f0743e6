//! The spam engine's SPF, DKIM and DMARC rules on what the gateway found,
//! against a real DNS server (dnsmasq): the stock rules of Debian's
//! spamassassin package score them with 50_scores.cf's network score set,
//! and a real `spamassassin` run on the delivered message (its DKIM plugin
//! verifying by itself through the same dnsmasq) hits the same SPF and
//! DKIM rules.
//!
//! What the real run cannot show here: the test clients connect from
//! 127.0.0.0/8, which SpamAssassin always trusts, so it sees no external
//! relay and runs neither its own HELO SPF check nor DMARC (its DMARC
//! plugin needs the external relay's address). Its MAIL FROM SPF results
//! come from the gateway's internal Received-SPF header, as they do behind
//! any policyd-spf. DMARC_* and SPF_HELO_* are checked against the stock
//! rule names and scores only. ADSP (RFC 5617, historic; DKIM_ADSP_*) is
//! compared like SPF and DKIM: the real run looks the records up itself.

use std::collections::BTreeMap;
use std::fs;

use mailgate_tests::dkim::{
    DkimKey, auth_rules, dkim_key, dkim_signed, dkim_signed_as, spamassassin,
};
use mailgate_tests::{Backend, Client, DnsServer, Gateway, Record};

fn records(key: &DkimKey) -> Vec<Record<'_>> {
    vec![
        Record::Zone("test"),
        Record::Zone("example.org"),
        Record::Zone("example.com"),
        // both.test: SPF passes for the test client, signs, p=reject.
        Record::Txt("both.test", "v=spf1 ip4:127.0.0.2 -all"),
        Record::Txt("sel1._domainkey.both.test", &key.txt),
        Record::Txt("_dmarc.both.test", "v=DMARC1; p=reject"),
        // lax.test: SPF softfail, signs, p=none.
        Record::Txt("lax.test", "v=spf1 ip4:192.0.2.1 ~all"),
        Record::Txt("sel1._domainkey.lax.test", &key.txt),
        Record::Txt("_dmarc.lax.test", "v=DMARC1; p=none"),
        // fail.test: SPF fail, no signature, p=quarantine.
        Record::Txt("fail.test", "v=spf1 ip4:192.0.2.1 -all"),
        Record::Txt("_dmarc.fail.test", "v=DMARC1; p=quarantine"),
        // rej.test: SPF neutral, signs, p=reject.
        Record::Txt("rej.test", "v=spf1 ?all"),
        Record::Txt("sel1._domainkey.rej.test", &key.txt),
        Record::Txt("_dmarc.rej.test", "v=DMARC1; p=reject"),
        // plain.test: no SPF, no DKIM, no DMARC record. It exists (an
        // address): for an author domain that does not (gone.test),
        // SpamAssassin's ADSP test DKIM_ADSP_NXDOMAIN hits.
        Record::Host("plain.test", "192.0.2.9"),
        // ADSP (RFC 5617): all.test signs all its mail, disc.test too and
        // says to discard the rest.
        Record::Host("all.test", "192.0.2.10"),
        Record::Txt("_adsp._domainkey.all.test", "dkim=all"),
        Record::Txt("sel1._domainkey.disc.test", &key.txt),
        Record::Txt("_adsp._domainkey.disc.test", "dkim=discardable"),
        // In the stock def_welcomelist_from_dkim (*@* paypal.com) and
        // def_welcomelist_auth (*@paypal-customerfeedback.com).
        // (DMARC's tree walk asks _dmarc.com too.)
        Record::Zone("com"),
        Record::Txt("sel1._domainkey.paypal.com", &key.txt),
        Record::Txt("paypal-customerfeedback.com", "v=spf1 ip4:127.0.0.2 -all"),
    ]
}

fn message(domain: &str, marker: &str) -> String {
    format!(
        "From: Alice <alice@{domain}>\nTo: b@example.com\nSubject: rules {marker}\n\
         Message-ID: <{marker}@{domain}>\nDate: Thu, 03 Dec 2026 12:00:00 +0000\n\n\
         Hello.\n{marker}\n"
    )
}

/// The names only.
fn names(rules: &BTreeMap<String, String>) -> Vec<&str> {
    rules.keys().map(String::as_str).collect()
}

/// Drops what SpamAssassin cannot check from 127.0.0.0/8 (see the top).
fn comparable(rules: &BTreeMap<String, String>) -> Vec<&str> {
    names(rules)
        .into_iter()
        .filter(|n| !n.starts_with("SPF_HELO_") && !n.starts_with("DMARC_"))
        .collect()
}

#[test]
fn spf_dkim_and_dmarc_rules_score_as_spamassassin() {
    let backend = Backend::start();
    let key = dkim_key();
    let dns = DnsServer::with(&records(&key));
    let home = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let gw = Gateway::configure(
        &backend,
        &format!(
            "dns_nameservers = {}\nsmtpd_sender_restrictions = check_spf\n\
             spf_mail_from_reject = no\n\
             content_scanner = scanner\nscanner_directory = {}\nscanner_timeout = 60s\n\
             spam_bayes_directory =\nspam_stock_rules_directory = /usr/share/spamassassin\n\
             spam_network_tests = yes\n\
             dkim_verify = yes\ndmarc_verify = yes\n\
             dmarc_reject_action = tag\ndmarc_quarantine_action = tag\n",
            dns.nameserver(),
            home.path().display()
        ),
    )
    .with_scanner()
    .launch();

    let send = |sender: &str, text: &str, marker: &str| {
        let mut client = Client::connect(gw.port, "127.0.0.2").unwrap();
        let reply = client.send_message(sender, &["b@example.com"], text);
        assert!(reply.starts_with("250"), "{reply}\n{}", gw.log());
        let received = backend.wait_for_message(marker);
        let status = received.header("X-Spam-Status");
        assert_eq!(status.len(), 1, "{}", received.message);
        (auth_rules(&status[0]), received.message)
    };

    // SPF pass, a valid author signature, DMARC pass.
    let signed = dkim_signed(&key, "both.test", &message("both.test", "marker-r1"));
    let (rules, delivered) = send("alice@both.test", &signed, "marker-r1");
    assert_eq!(
        names(&rules),
        [
            "DKIM_SIGNED",
            "DKIM_VALID",
            "DKIM_VALID_AU",
            "DKIM_VALID_EF",
            "DMARC_PASS",
            "SPF_HELO_NONE",
            "SPF_PASS",
        ],
        "{delivered}"
    );
    // 50_scores.cf, score set 1 (network tests, no Bayes).
    assert_eq!(rules["DKIM_SIGNED"], "0.1");
    assert_eq!(rules["DKIM_VALID"], "-0.1");
    assert_eq!(rules["DMARC_PASS"], "-0.001");
    assert_eq!(rules["SPF_PASS"], "-0.001");
    let sa = spamassassin(&dns, "alice@both.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");

    // SPF softfail, the body changed after signing, p=none.
    let signed = dkim_signed(&key, "lax.test", &message("lax.test", "marker-r2"));
    let tampered = signed.replace("Hello.", "Hello, changed.");
    let (rules, delivered) = send("alice@lax.test", &tampered, "marker-r2");
    assert_eq!(
        names(&rules),
        [
            "DKIM_INVALID",
            "DKIM_SIGNED",
            "DMARC_NONE",
            "SPF_HELO_NONE",
            "SPF_SOFTFAIL",
        ],
        "{delivered}"
    );
    assert_eq!(rules["SPF_SOFTFAIL"], "0.972");
    assert_eq!(rules["DMARC_NONE"], "0.898");
    let sa = spamassassin(&dns, "alice@lax.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");

    // SPF fail, no signature, p=quarantine (tagged here, not quarantined).
    let (rules, delivered) = send(
        "alice@fail.test",
        &message("fail.test", "marker-r3"),
        "marker-r3",
    );
    assert_eq!(
        names(&rules),
        ["DMARC_QUAR", "SPF_FAIL", "SPF_HELO_NONE"],
        "{delivered}"
    );
    assert_eq!(rules["SPF_FAIL"], "0.919");
    assert_eq!(rules["DMARC_QUAR"], "1.198");
    let sa = spamassassin(&dns, "alice@fail.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");

    // SPF neutral, a broken signature, p=reject (tagged here).
    let signed = dkim_signed(&key, "rej.test", &message("rej.test", "marker-r4"));
    let tampered = signed.replace("Hello.", "Hello, changed.");
    let (rules, delivered) = send("alice@rej.test", &tampered, "marker-r4");
    assert_eq!(
        names(&rules),
        [
            "DKIM_INVALID",
            "DKIM_SIGNED",
            "DMARC_REJECT",
            "SPF_HELO_NONE",
            "SPF_NEUTRAL",
        ],
        "{delivered}"
    );
    assert_eq!(rules["DMARC_REJECT"], "1.797");
    assert_eq!(rules["SPF_NEUTRAL"], "0.652");
    let sa = spamassassin(&dns, "alice@rej.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");

    // Nothing published: SPF none, DMARC missing, not signed.
    let (rules, delivered) = send(
        "alice@plain.test",
        &message("plain.test", "marker-r5"),
        "marker-r5",
    );
    assert_eq!(
        names(&rules),
        ["DMARC_MISSING", "SPF_HELO_NONE", "SPF_NONE"],
        "{delivered}"
    );
    let sa = spamassassin(&dns, "alice@plain.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");

    // The stock welcomelists: a valid paypal.com signature
    // (def_welcomelist_from_dkim) and an SPF pass for a listed envelope
    // sender (def_welcomelist_auth), -7.5 each.
    let signed = dkim_signed(&key, "paypal.com", &message("paypal.com", "marker-r6"));
    let (rules, delivered) = send("bounce@paypal-customerfeedback.com", &signed, "marker-r6");
    assert_eq!(
        names(&rules),
        [
            "DKIM_SIGNED",
            "DKIM_VALID",
            "DKIM_VALID_AU",
            "DMARC_MISSING",
            "SPF_HELO_NONE",
            "SPF_PASS",
            "USER_IN_DEF_DKIM_WL",
            "USER_IN_DEF_SPF_WL",
        ],
        "{delivered}"
    );
    assert_eq!(rules["USER_IN_DEF_DKIM_WL"], "-7.5");
    assert_eq!(rules["USER_IN_DEF_SPF_WL"], "-7.5");
    let sa = spamassassin(&dns, "bounce@paypal-customerfeedback.com", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");
    // i= names a subdomain: SpamAssassin matches the author by i='s
    // domain (its SDID), not d=.
    let signed = dkim_signed_as(
        &key,
        "both.test",
        Some("@news.both.test"),
        &message("news.both.test", "marker-r8"),
    );
    let (rules, delivered) = send("alice@news.both.test", &signed, "marker-r8");
    assert_eq!(
        names(&rules),
        [
            "DKIM_SIGNED",
            "DKIM_VALID",
            "DKIM_VALID_AU",
            "DKIM_VALID_EF",
            "DMARC_PASS",
            "SPF_HELO_NONE",
            "SPF_NONE",
        ],
        "{delivered}"
    );
    let sa = spamassassin(&dns, "alice@news.both.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");

    // Signed by the domain but changed: no welcomelist.
    let signed = dkim_signed(&key, "paypal.com", &message("paypal.com", "marker-r7"));
    let tampered = signed.replace("Hello.", "Hello, changed.");
    let (rules, delivered) = send("bounce@elsewhere.test", &tampered, "marker-r7");
    assert!(!rules.contains_key("USER_IN_DEF_DKIM_WL"), "{delivered}");
    // The stock adsp_override (60_adsp_override_dkim.cf) makes paypal.com
    // discardable: no valid author signature, DKIM_ADSP_DISCARD.
    assert_eq!(rules["DKIM_ADSP_DISCARD"], "1.8", "{delivered}");
    let sa = spamassassin(&dns, "bounce@elsewhere.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");

    // ADSP published in the DNS: dkim=all and no signature; dkim=
    // discardable and a broken signature; an author domain that does not
    // exist. 50_scores.cf's network set.
    let (rules, delivered) = send(
        "alice@all.test",
        &message("all.test", "marker-r9"),
        "marker-r9",
    );
    assert_eq!(rules["DKIM_ADSP_ALL"], "1.1", "{delivered}");
    let sa = spamassassin(&dns, "alice@all.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");

    let signed = dkim_signed(&key, "disc.test", &message("disc.test", "marker-r10"));
    let tampered = signed.replace("Hello.", "Hello, changed.");
    let (rules, delivered) = send("alice@disc.test", &tampered, "marker-r10");
    assert_eq!(rules["DKIM_ADSP_DISCARD"], "1.8", "{delivered}");
    assert!(rules.contains_key("DKIM_INVALID"), "{delivered}");
    let sa = spamassassin(&dns, "alice@disc.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");
    // Signed and intact: the author signature answers ADSP.
    let signed = dkim_signed(&key, "disc.test", &message("disc.test", "marker-r11"));
    let (rules, delivered) = send("alice@disc.test", &signed, "marker-r11");
    assert!(rules.contains_key("DKIM_VALID_AU"), "{delivered}");
    assert!(
        !rules.keys().any(|n| n.starts_with("DKIM_ADSP_")),
        "{delivered}"
    );
    let sa = spamassassin(&dns, "alice@disc.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");

    let (rules, delivered) = send(
        "alice@plain.test",
        &message("gone.test", "marker-r12"),
        "marker-r12",
    );
    assert_eq!(rules["DKIM_ADSP_NXDOMAIN"], "0.8", "{delivered}");
    let sa = spamassassin(&dns, "alice@plain.test", &delivered);
    assert_eq!(comparable(&sa), comparable(&rules), "{delivered}");
}

/// Network tests without the sender checks would leave these rules
/// silent: check says so.
#[test]
fn check_says_the_rules_need_the_sender_checks() {
    let backend = Backend::start();
    let home = tempfile::tempdir().unwrap();
    let gw = Gateway::configure(
        &backend,
        &format!(
            "content_scanner = scanner\nscanner_directory = {}\nspam_bayes_directory =\n\
             spam_network_tests = yes\n",
            home.path().display()
        ),
    )
    .with_scanner();
    let (status, _, stderr) = gw.admin(&["check"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains("spam_network_tests = yes: the SPF, DKIM and DMARC spam rules"),
        "{stderr}"
    );
    gw.add_main_cf("dkim_verify = yes\n");
    let (_, _, stderr) = gw.admin(&["check"]);
    assert!(
        !stderr.contains("spam_network_tests = yes: the SPF"),
        "{stderr}"
    );
}
