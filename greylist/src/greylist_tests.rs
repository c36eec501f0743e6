use super::*;

use mailgate_config::Table;
use mailgate_policy::state;
use mailgate_store::{StoreOptions, StoreSpec};

use crate::whitelist::Whitelists;

const T0: u64 = 1_800_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    greylister: Greylister,
    runtime: tokio::runtime::Runtime,
}

fn fixture(awl: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let spec = StoreSpec::Redb(dir.path().join("greylist.redb"));
    let store = Store::open(&spec, "greylist", StoreOptions::default()).unwrap();
    let settings = Settings {
        delay: 300,
        retry_window: 2 * 86400,
        max_age: 35 * 86400,
        auto_whitelist_clients: awl,
        whitelists: Whitelists {
            clients: vec![Table::open("inline:{ friend.example=OK }", dir.path()).unwrap()],
            recipients: vec![Table::open("inline:{ postmaster@=OK }", dir.path()).unwrap()],
        },
        text: "Greylisted, see http://postgrey.schweikert.ch/help/%r.html".to_string(),
        database: spec,
        database_timeout: Duration::from_secs(1),
        hostname: "gw.example.com".to_string(),
    };
    Fixture {
        _dir: dir,
        greylister: Greylister::new(settings, store),
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    }
}

fn request(address: &str, sender: &str, recipient: &str, instance: &str) -> Request {
    Request {
        client_address: address.to_string(),
        client_name: "mx.sender.example".to_string(),
        sender: sender.to_string(),
        recipient: recipient.to_string(),
        instance: instance.to_string(),
        ..Request::smtpd(state::RCPT)
    }
}

impl Fixture {
    fn decide(&self, request: &Request, now: u64) -> String {
        self.runtime
            .block_on(self.greylister.decide(request, now))
            .as_str()
            .to_string()
    }
}

#[test]
fn a_new_triplet_is_greylisted_until_the_delay_has_passed() {
    let f = fixture(5);
    let r = request(
        "192.0.2.10",
        "alice@sender.example",
        "bob@example.com",
        "i1",
    );
    assert_eq!(
        f.decide(&r, T0),
        "DEFER_IF_PERMIT 4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/example.com.html"
    );
    // Early retry: still greylisted.
    assert!(f.decide(&r, T0 + 299).starts_with("DEFER_IF_PERMIT"));
    // After the delay, from another host of the same /24, once with the
    // header for this message...
    let again = request(
        "192.0.2.99",
        "alice@sender.example",
        "bob@example.com",
        "i2",
    );
    let pass = f.decide(&again, T0 + 315);
    assert!(
        pass.starts_with(
            "PREPEND X-Greylist: delayed 315 seconds by mailgate-greylist at gw.example.com; "
        ),
        "{pass}"
    );
    // ... then without (same message, next recipient; later messages).
    assert_eq!(f.decide(&again, T0 + 316), "DUNNO");
    let later = request(
        "192.0.2.10",
        "alice@sender.example",
        "bob@example.com",
        "i3",
    );
    assert_eq!(f.decide(&later, T0 + 4000), "DUNNO");
    // Another /24 is another triplet.
    let other = request(
        "198.51.100.10",
        "alice@sender.example",
        "bob@example.com",
        "i4",
    );
    assert!(f.decide(&other, T0 + 4000).starts_with("DEFER_IF_PERMIT"));
}

#[test]
fn verp_senders_share_a_triplet_and_the_text_can_count_seconds() {
    let mut f = fixture(5);
    f.greylister.settings.text = "450 Come back in %s seconds".to_string();
    let first = request(
        "192.0.2.10",
        "bounce-1234@lists.example",
        "bob@example.com",
        "",
    );
    assert_eq!(
        f.decide(&first, T0),
        "DEFER_IF_PERMIT 450 Come back in 300 seconds"
    );
    let second = request(
        "192.0.2.10",
        "bounce-9876@lists.example",
        "Bob@Example.com",
        "",
    );
    assert_eq!(
        f.decide(&second, T0 + 100),
        "DEFER_IF_PERMIT 450 Come back in 200 seconds"
    );
    assert!(
        f.decide(&second, T0 + 300)
            .starts_with("PREPEND X-Greylist: delayed 300")
    );
}

#[test]
fn a_retry_after_the_retry_window_starts_again() {
    let f = fixture(5);
    let r = request("192.0.2.10", "a@s.example", "b@example.com", "");
    assert!(f.decide(&r, T0).starts_with("DEFER_IF_PERMIT"));
    let late = T0 + 2 * 86400 + 1;
    assert!(f.decide(&r, late).starts_with("DEFER_IF_PERMIT"));
    assert!(f.decide(&r, late + 300).starts_with("PREPEND"));
}

#[test]
fn whitelists_pass_at_once() {
    let f = fixture(5);
    let mut r = request("192.0.2.10", "a@s.example", "b@example.com", "");
    r.client_name = "smtp.friend.example".to_string();
    assert_eq!(f.decide(&r, T0), "DUNNO");
    let r = request("192.0.2.10", "a@s.example", "postmaster@example.com", "");
    assert_eq!(f.decide(&r, T0), "DUNNO");
}

#[test]
fn a_client_that_retried_often_enough_passes_at_once() {
    let f = fixture(2);
    let client = "192.0.2.10";
    // Two passed retries, more than an hour apart, for two triplets.
    for (n, start) in [(1, T0), (2, T0 + 7200)] {
        let r = request(client, "a@s.example", &format!("user{n}@example.com"), "");
        assert!(f.decide(&r, start).starts_with("DEFER_IF_PERMIT"));
        assert!(f.decide(&r, start + 300).starts_with("PREPEND"));
    }
    let fresh = request(client, "new@s.example", "user3@example.com", "");
    assert_eq!(f.decide(&fresh, T0 + 7600), "DUNNO");
    // The auto-whitelist is per client address, not per network.
    let neighbour = request("192.0.2.11", "new@s.example", "user3@example.com", "");
    assert!(
        f.decide(&neighbour, T0 + 7600)
            .starts_with("DEFER_IF_PERMIT")
    );
}

#[test]
fn retries_within_an_hour_count_once_for_the_auto_whitelist() {
    let f = fixture(2);
    for n in 1..=3 {
        let r = request(
            "192.0.2.10",
            "a@s.example",
            &format!("u{n}@example.com"),
            "",
        );
        assert!(f.decide(&r, T0).starts_with("DEFER_IF_PERMIT"));
        assert!(f.decide(&r, T0 + 300 + n).starts_with("PREPEND"));
    }
    let fresh = request("192.0.2.10", "a@s.example", "u9@example.com", "");
    assert!(f.decide(&fresh, T0 + 400).starts_with("DEFER_IF_PERMIT"));
}

#[test]
fn requests_greylisting_cannot_use_are_answered_dunno() {
    let f = fixture(5);
    let no_recipient = request("192.0.2.10", "a@s.example", "", "");
    assert_eq!(f.decide(&no_recipient, T0), "DUNNO");
    let no_address = request("unknown", "a@s.example", "b@example.com", "");
    assert_eq!(f.decide(&no_address, T0), "DUNNO");
}

#[test]
fn a_damaged_entry_counts_as_new() {
    let f = fixture(5);
    let r = request("192.0.2.10", "a@s.example", "b@example.com", "");
    let key = format!("{TRIPLET}192.0.2.0/a@s.example/b@example.com");
    f.runtime.block_on(async {
        f.greylister
            .store
            .set(&key, b"garbage", Duration::from_secs(60))
            .await
            .unwrap()
    });
    assert!(
        f.decide(&r, T0)
            .starts_with("DEFER_IF_PERMIT 4.2.0 Greylisted")
    );
}

#[test]
fn instances_are_remembered_in_a_bounded_list() {
    let f = fixture(5);
    assert!(f.greylister.is_new_instance("a"));
    assert!(!f.greylister.is_new_instance("a"));
    for i in 0..INSTANCES {
        assert!(f.greylister.is_new_instance(&i.to_string()));
    }
    assert!(f.greylister.is_new_instance("a"));
    assert!(f.greylister.is_new_instance(""));
    assert!(f.greylister.is_new_instance(""));
}
