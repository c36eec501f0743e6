use super::*;

fn config(dir: &Path, main_cf: &str) -> MainConfig {
    MainConfig::parse(main_cf, &dir.join("main.cf"), dir, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn load(main_cf: &str) -> Result<Restrictions, Vec<(String, ListError)>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("access"), "spammer@ REJECT\n").unwrap();
    std::fs::write(dir.path().join("helo_checks"), "/^localhost$/ REJECT\n").unwrap();
    Restrictions::load(&config(dir.path(), main_cf))
}

fn error(main_cf: &str) -> String {
    let Err(errors) = load(main_cf) else {
        panic!("expected an error")
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    format!("{}: {}", errors[0].0, errors[0].1)
}

#[test]
fn the_seed_lists_parse() {
    // Seed 002's final smtpd_recipient_restrictions and seed 001's blocks.
    let r = load(
        "smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_non_fqdn_sender, \
         reject_unknown_sender_domain, reject_unknown_recipient_domain, permit_mynetworks, \
         check_sender_access hash:access, reject_unauth_destination, \
         reject_multi_recipient_bounce, check_helo_access pcre:helo_checks, \
         reject_non_fqdn_hostname, reject_invalid_hostname, reject_rbl_client zen.spamhaus.org, permit\n\
         smtpd_helo_required = yes\n\
         smtpd_helo_restrictions = reject_non_fqdn_hostname reject_invalid_hostname\n\
         smtpd_sender_restrictions = reject_non_fqdn_sender, reject_unknown_sender_domain\n\
         smtpd_client_restrictions = check_client_access hash:access permit\n",
    )
    .unwrap();
    assert_eq!(r.recipient.len(), 13);
    assert!(matches!(
        r.recipient[11],
        Restriction::Dnsxl(DnsxlCheck::RejectClient, Dnsxl { ref domain, filter: None, .. })
            if domain == "zen.spamhaus.org"
    ));
    assert!(matches!(r.helo[1], Restriction::RejectInvalidHeloHostname));
    assert!(matches!(
        r.client[0],
        Restriction::Access(Subject::Client, _)
    ));
    assert!(!r.is_open_relay());
}

#[test]
fn unknown_names_and_missing_arguments_are_errors() {
    assert_eq!(
        error("smtpd_recipient_restrictions = permit_mynetworks, reject_unath_destination\n"),
        "smtpd_recipient_restrictions: unknown restriction \"reject_unath_destination\""
    );
    assert_eq!(
        error("smtpd_helo_restrictions = check_helo_access\n"),
        "smtpd_helo_restrictions: \"check_helo_access\" must be followed by a lookup table"
    );
    assert!(error("smtpd_client_restrictions = reject_rbl_client\n").contains("DNS list domain"));
    assert!(
        error("smtpd_client_restrictions = check_client_access hash:/no/such/file\n")
            .contains("/no/such/file")
    );
    assert!(
        error("smtpd_recipient_restrictions = permit_mx_backup, reject_unauth_destination\n")
            .contains("is not implemented in mailgate")
    );
    assert!(error("smtpd_client_restrictions = sleep x\n").contains("not a number"));
    assert!(
        error("smtpd_data_restrictions = hash:access\n").contains("without a restriction name")
    );
}

#[test]
fn address_verification_restrictions_parse() {
    let r = load(
        "smtpd_sender_restrictions = reject_unverified_sender\n\
         smtpd_recipient_restrictions = reject_unauth_destination, reject_unverified_recipient\n",
    )
    .unwrap();
    assert!(matches!(r.sender[0], Restriction::RejectUnverifiedSender));
    assert!(matches!(
        r.recipient[1],
        Restriction::RejectUnverifiedRecipient
    ));
    assert!(r.uses_address_verification());
    assert!(
        !load("smtpd_recipient_restrictions = reject_unauth_destination\n")
            .unwrap()
            .uses_address_verification()
    );
}

#[test]
fn a_bare_table_is_the_list_s_own_access_check() {
    let r = load(
        "smtpd_sender_restrictions = hash:access\nsmtpd_helo_restrictions = pcre:helo_checks\n",
    )
    .unwrap();
    assert!(matches!(
        r.sender[0],
        Restriction::Access(Subject::Sender, _)
    ));
    assert!(matches!(r.helo[0], Restriction::Access(Subject::Helo, _)));
}

#[test]
fn classes_resolve_and_loops_are_refused() {
    let r = load(
        "smtpd_restriction_classes = strict, relaxed\n\
         strict = reject_unknown_sender_domain, relaxed\n\
         relaxed = permit\n\
         smtpd_recipient_restrictions = strict, reject_unauth_destination\n",
    )
    .unwrap();
    assert!(matches!(r.recipient[0], Restriction::Class(ref n) if n == "strict"));
    assert_eq!(r.classes["strict"].len(), 2);
    let errors = load("smtpd_restriction_classes = a, b\na = b\nb = reject_non_fqdn_sender, a\n")
        .err()
        .unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|(_, e)| matches!(e, ListError::ClassLoop(_)))
    );
}

#[test]
fn open_relay_is_detected_through_classes() {
    let r = load(
        "smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit_mynetworks, permit_auth_destination\n",
    )
    .unwrap();
    assert!(r.is_open_relay());
    let r = load(
        "smtpd_restriction_classes = guard\nguard = reject_unauth_destination\n\
         smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit_mynetworks, guard\n",
    )
    .unwrap();
    assert!(!r.is_open_relay());
    // The default relay restrictions guard.
    assert!(!load("").unwrap().is_open_relay());
}

#[test]
fn access_results_that_name_restrictions() {
    let r = load("smtpd_restriction_classes = strict\nstrict = reject_non_fqdn_sender\n").unwrap();
    let list = r
        .parse_action("reject_unknown_sender_domain, strict", Subject::Sender)
        .unwrap();
    assert_eq!(list.len(), 2);
    assert!(matches!(
        r.parse_action("check_sender_access hash:/etc/x", Subject::Sender),
        Err(ListError::TableInAction(_))
    ));
    assert!(matches!(
        r.parse_action("frobnicate", Subject::Sender),
        Err(ListError::Unknown(_))
    ));
}

#[test]
fn dns_list_reply_filters() {
    let d = Dnsxl::parse("zen.example=127.0.0.[2..11]").unwrap();
    assert_eq!(d.domain, "zen.example");
    let f = d.filter.unwrap();
    assert!(f.matches("127.0.0.2".parse().unwrap()));
    assert!(f.matches("127.0.0.11".parse().unwrap()));
    assert!(!f.matches("127.0.0.12".parse().unwrap()));
    assert!(!f.matches("127.0.1.2".parse().unwrap()));
    let f = IpFilter::parse("127.0.[0;2..3].[1;4]").unwrap();
    assert!(f.matches("127.0.3.4".parse().unwrap()));
    assert!(!f.matches("127.0.1.4".parse().unwrap()));
    for bad in [
        "127.0.0",
        "127.0.0.256",
        "127.0.0.[5..2]",
        "127.0.0.[2",
        "127.0.0.1.",
        "x.0.0.1",
    ] {
        assert!(IpFilter::parse(bad).is_err(), "{bad}");
    }
    assert!(Dnsxl::parse("bad domain").is_err());
    assert!(Dnsxl::parse("").is_err());
}

#[test]
fn reversed_addresses() {
    assert_eq!(reversed_address("192.0.2.1".parse().unwrap()), "1.2.0.192");
    assert_eq!(
        reversed_address("2001:db8::1".parse().unwrap()),
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    );
}
