use std::path::Path;

use super::*;

fn local(dir: &Path, main_cf: &str) -> LocalRecipients {
    let config = MainConfig::parse(main_cf, &dir.join("main.cf"), dir, &[]).unwrap();
    LocalRecipients::from_config(&config).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn addrs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const MAIN: &str = "myhostname = gw.example.com\nmydestination = $myhostname, localhost\n\
                    alias_maps = hash:aliases\nrecipient_delimiter = +\n";

fn aliases(dir: &Path) {
    write(
        dir,
        "aliases",
        "postmaster: admin@inside.example\n\
         abuse: security, noc@inside.example\n\
         security: sec@inside.example\n\
         root: postmaster\n\
         loop1: loop2\nloop2: loop1\n\
         keep: keep, copy@inside.example\n\
         list: Sec@Inside.Example, sec@inside.example\n",
    );
}

#[test]
fn local_domains_and_unqualified_addresses() {
    let dir = tempfile::tempdir().unwrap();
    aliases(dir.path());
    let l = local(dir.path(), MAIN);
    assert!(l.is_local("anyone@GW.example.com"));
    assert!(l.is_local("anyone@localhost."));
    assert!(
        l.is_local("postmaster"),
        "myorigin is gw.example.com, a local domain"
    );
    assert!(!l.is_local("anyone@example.com"));
    let l = local(dir.path(), &format!("{MAIN}myorigin = example.com\n"));
    assert!(!l.is_local("postmaster"));
}

#[test]
fn the_default_recipient_table_is_the_aliases() {
    let dir = tempfile::tempdir().unwrap();
    aliases(dir.path());
    let l = local(dir.path(), MAIN);
    assert!(l.known("abuse@gw.example.com"));
    assert!(l.known("Security+tag@gw.example.com"), "extension stripped");
    assert!(!l.known("nobody@gw.example.com"));
    assert!(!l.known("nobody"));
    // Never refused by Postfix's smtpd.
    for name in [
        "postmaster@localhost",
        "MAILER-DAEMON@gw.example.com",
        "double-bounce@gw.example.com",
    ] {
        assert!(l.known(name), "{name}");
    }
    // Not local: not this table's business.
    assert!(l.known("nobody@example.com"));
    // passwd.byname lists no one; without alias_maps no name is known.
    let l = local(
        dir.path(),
        "myhostname = gw.example.com\nmydestination = $myhostname\n",
    );
    assert!(!l.known("root@gw.example.com"));
    assert!(l.known("postmaster@gw.example.com"));
}

#[test]
fn explicit_tables_and_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    aliases(dir.path());
    write(
        dir.path(),
        "users",
        "alice@gw.example.com x\nbob x\n@localhost x\n",
    );
    let l = local(
        dir.path(),
        &format!("{MAIN}local_recipient_maps = hash:users\n"),
    );
    assert!(l.known("alice@gw.example.com"));
    assert!(l.known("bob@gw.example.com"));
    assert!(l.known("anyone@localhost"));
    assert!(
        !l.known("abuse@gw.example.com"),
        "the aliases are not in this list"
    );
    let l = local(dir.path(), &format!("{MAIN}local_recipient_maps =\n"));
    assert!(l.known("nobody@gw.example.com"), "empty: every local user");
}

#[test]
fn aliases_expand_recursively_into_addresses() {
    let dir = tempfile::tempdir().unwrap();
    aliases(dir.path());
    let l = local(dir.path(), MAIN);
    assert_eq!(
        l.expand("Postmaster@gw.example.com").unwrap(),
        addrs(&["admin@inside.example"])
    );
    assert_eq!(
        l.expand("abuse@localhost").unwrap(),
        addrs(&["sec@inside.example", "noc@inside.example"])
    );
    assert_eq!(l.expand("root").unwrap(), addrs(&["admin@inside.example"]));
    // The extension is dropped (propagate_unmatched_extensions has no "alias").
    assert_eq!(
        l.expand("abuse+spam@gw.example.com").unwrap(),
        addrs(&["sec@inside.example", "noc@inside.example"])
    );
    // Unaliased local names and remote addresses stay.
    assert_eq!(
        l.expand("nobody@gw.example.com").unwrap(),
        addrs(&["nobody@gw.example.com"])
    );
    assert_eq!(
        l.expand("postmaster@example.com").unwrap(),
        addrs(&["postmaster@example.com"])
    );
    // An alias that names itself keeps it once; duplicates go.
    assert_eq!(
        l.expand("keep@gw.example.com").unwrap(),
        addrs(&["keep@gw.example.com", "copy@inside.example"])
    );
    assert_eq!(
        l.expand("list@gw.example.com").unwrap(),
        addrs(&["Sec@Inside.Example"])
    );
    // A loop is an error (the message is deferred), not a hang.
    assert!(matches!(
        l.expand("loop1@gw.example.com"),
        Err(RewriteError::Nesting { .. })
    ));
}

#[test]
fn extensions_carried_over_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    aliases(dir.path());
    let l = local(
        dir.path(),
        &format!("{MAIN}propagate_unmatched_extensions = canonical, virtual, alias\n"),
    );
    assert_eq!(
        l.expand("security+spam@gw.example.com").unwrap(),
        addrs(&["sec+spam@inside.example"])
    );
}

#[test]
fn commands_and_files_stop_the_tables_from_loading() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "aliases",
        "postmaster: admin@inside.example\nbin: |/bin/true\n",
    );
    let config = MainConfig::parse(MAIN, &dir.path().join("main.cf"), dir.path(), &[]).unwrap();
    let err = LocalRecipients::from_config(&config).unwrap_err();
    let d = err.into_diagnostics();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].line, 2);
    assert!(
        d[0].message
            .contains("delivery to a command is not supported"),
        "{}",
        d[0].message
    );
    let config = MainConfig::parse(
        "mydestination = gw.example.com\nalias_maps = inline:{ {x = :include:/etc/list} }\n",
        &dir.path().join("main.cf"),
        dir.path(),
        &[],
    )
    .unwrap();
    assert!(LocalRecipients::from_config(&config).is_err());
}
