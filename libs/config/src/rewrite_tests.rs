use std::path::Path;

use super::*;

fn rewriting(dir: &Path, main_cf: &str) -> Rewriting {
    let config = MainConfig::parse(main_cf, &dir.join("main.cf"), dir, &[]).unwrap();
    Rewriting::from_config(&config).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn addrs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn nothing_configured_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = rewriting(dir.path(), "myorigin = example.com\n");
    assert!(r.is_empty());
    assert_eq!(r.sender("a@b.example").unwrap(), "a@b.example");
    assert_eq!(r.recipient("A@B.example").unwrap(), addrs(&["A@B.example"]));
    assert!(!r.known("a@b.example", false));
}

#[test]
fn virtual_one_to_many_catch_all_and_recursion() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "virtual",
        "example.com anything\n\
         info@example.com  alice@inside.example, bob@inside.example\n\
         sales@example.com team@example.com\n\
         team@example.com  carol@inside.example alice@inside.example\n\
         @example.com      catchall@inside.example\n\
         self@example.com  self@example.com, copy@inside.example\n\
         @alias.example    @inside.example\n",
    );
    let r = rewriting(
        dir.path(),
        "myorigin = gw.example\nvirtual_alias_maps = hash:virtual\nrecipient_delimiter = +\n",
    );
    assert_eq!(
        r.recipient("Info@Example.com").unwrap(),
        addrs(&["alice@inside.example", "bob@inside.example"])
    );
    // Nested: sales -> team -> two addresses.
    assert_eq!(
        r.recipient("sales@example.com").unwrap(),
        addrs(&["carol@inside.example", "alice@inside.example"])
    );
    assert_eq!(
        r.recipient("nobody@example.com").unwrap(),
        addrs(&["catchall@inside.example"])
    );
    // An address that expands into itself is kept, once.
    assert_eq!(
        r.recipient("self@example.com").unwrap(),
        addrs(&["self@example.com", "copy@inside.example"])
    );
    // @domain to @domain keeps the local part; the extension is carried.
    assert_eq!(
        r.recipient("joe+news@alias.example").unwrap(),
        addrs(&["joe+news@inside.example"])
    );
    // An unmatched extension is carried over to each result.
    assert_eq!(
        r.recipient("info+x@example.com").unwrap(),
        addrs(&["alice+x@inside.example", "bob+x@inside.example"])
    );
    assert_eq!(
        r.recipient("other@elsewhere.example").unwrap(),
        addrs(&["other@elsewhere.example"])
    );
    // The default virtual_alias_domains is $virtual_alias_maps: a domain
    // listed as a key.
    assert!(r.is_alias_domain("example.com"));
    assert!(!r.is_alias_domain("inside.example"));
    assert!(r.known("info@example.com", false));
    assert!(r.known("anyone@example.com", false));
    assert!(!r.known("anyone@inside.example", false));
}

#[test]
fn loops_and_explosions_defer() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "virtual",
        "a@loop.example b@loop.example\n\
         b@loop.example a@loop.example\n\
         big@x.example big1@x.example big2@x.example big3@x.example\n",
    );
    let r = rewriting(
        dir.path(),
        "virtual_alias_maps = hash:virtual\nvirtual_alias_recursion_limit = 20\n\
         virtual_alias_expansion_limit = 2\n",
    );
    assert!(matches!(
        r.recipient("a@loop.example"),
        Err(RewriteError::Nesting { .. })
    ));
    assert!(matches!(
        r.recipient("big@x.example"),
        Err(RewriteError::Expansion { .. })
    ));
}

#[test]
fn canonical_sender_and_recipient() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sender_canonical",
        "jdoe@inside.example john.doe@example.com\n@old.example @example.com\n",
    );
    write(
        dir.path(),
        "canonical",
        "john.doe@example.com John.Doe@example.com\n",
    );
    write(
        dir.path(),
        "recipient_canonical",
        "/^(.*)@legacy\\.example$/ ${1}@example.com\n",
    );
    write(
        dir.path(),
        "virtual",
        "john.doe@example.com jdoe@inside.example\n",
    );
    let r = rewriting(
        dir.path(),
        "myorigin = example.com\nsender_canonical_maps = hash:sender_canonical\n\
         canonical_maps = hash:canonical\nrecipient_canonical_maps = regexp:recipient_canonical\n\
         virtual_alias_maps = hash:virtual\nrecipient_delimiter = +\n",
    );
    // sender_canonical first, then canonical.
    assert_eq!(
        r.sender("jdoe@inside.example").unwrap(),
        "John.Doe@example.com"
    );
    assert_eq!(
        r.sender("mary+x@old.example").unwrap(),
        "mary+x@example.com"
    );
    assert_eq!(r.sender("").unwrap(), "");
    // Recipients: recipient_canonical (a pattern table), canonical, virtual.
    assert_eq!(
        r.recipient("john.doe@legacy.example").unwrap(),
        addrs(&["jdoe@inside.example"])
    );
    assert!(r.known("jdoe@inside.example", true));
    assert!(!r.known("jdoe@inside.example", false));
}

#[test]
fn local_part_lookup_only_for_our_domains() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "virtual", "postmaster admin@inside.example\n");
    let r = rewriting(
        dir.path(),
        "myorigin = example.com\nmydestination = gw.example.com\n\
         virtual_alias_maps = hash:virtual\n",
    );
    assert_eq!(
        r.recipient("postmaster@gw.example.com").unwrap(),
        addrs(&["admin@inside.example"])
    );
    assert_eq!(
        r.recipient("postmaster@example.com").unwrap(),
        addrs(&["admin@inside.example"])
    );
    assert_eq!(
        r.recipient("postmaster@other.example").unwrap(),
        addrs(&["postmaster@other.example"])
    );
    // A bare result gets @myorigin.
    write(dir.path(), "virtual", "abuse@example.com security\n");
    let r = rewriting(
        dir.path(),
        "myorigin = example.com\nvirtual_alias_maps = hash:virtual\n",
    );
    assert_eq!(
        r.recipient("abuse@example.com").unwrap(),
        addrs(&["security@example.com"])
    );
}
