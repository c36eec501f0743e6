//! check_policy_service in smtpd, through running gateways: greylisting by
//! Debian's real postgrey and by mailgate's own greylist service, the
//! auto-whitelist, two gateways sharing their greylisting through a real
//! redis-server, and a policy server that cannot be asked.

use std::time::{Duration, Instant};

use mailgate_tests::{Backend, Client, Gateway, Postgrey, Redis, free_port, message, wait_for};

const RESTRICTIONS: &str = "smtpd_recipient_restrictions = reject_unauth_destination, ";

/// One attempt to send a message: the reply to RCPT, or the final reply.
fn attempt(port: u16, from: &str, sender: &str, marker: &str) -> String {
    let mut client = Client::connect(port, from).expect("connect");
    client.send_message(
        sender,
        &["bob@example.com"],
        &message("greylisting", marker),
    )
}

/// Tries again until the message is accepted, as a sending server would;
/// returns the replies before acceptance.
fn retry_until_accepted(port: u16, from: &str, sender: &str, marker: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refused = Vec::new();
    loop {
        let reply = attempt(port, from, sender, marker);
        if reply.starts_with("250") {
            return refused;
        }
        refused.push(reply);
        assert!(Instant::now() < deadline, "still refused: {refused:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn smtpd_is_greylisted_by_a_real_postgrey_then_accepts_the_retry() {
    let postgrey = Postgrey::start(1);
    let backend = Backend::start();
    let gw = Gateway::start(
        &backend,
        &format!(
            "{RESTRICTIONS}check_policy_service inet:127.0.0.1:{}\n",
            postgrey.port
        ),
    );
    let first = attempt(
        gw.port,
        "127.0.0.2",
        "alice@sender.example",
        "marker-postgrey",
    );
    assert!(
        first.starts_with("450 4.2.0 <bob@example.com>: Recipient address rejected: Greylisted"),
        "{first}"
    );
    gw.wait_for_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 450 4.2.0 <bob@example.com>: Recipient address rejected: Greylisted");
    retry_until_accepted(
        gw.port,
        "127.0.0.2",
        "alice@sender.example",
        "marker-postgrey",
    );
    let received = backend.wait_for_message("marker-postgrey");
    let header = received.header("X-Greylist");
    assert_eq!(header.len(), 1, "{:?}", received.message);
    assert!(header[0].contains("by postgrey"), "{header:?}");
}

fn greylist_gateway(backend: &Backend, extra: &str) -> Gateway {
    let gw = Gateway::configure(
        backend,
        &format!("{RESTRICTIONS}check_policy_service unix:private/greylist\n"),
    );
    gw.add_main_cf(&format!(
        "data_directory = {}\ngreylist_delay = 1s\n{extra}",
        gw.path("data").display()
    ));
    gw.add_master_cf("greylist unix - - y - 0 greylist");
    gw.launch()
}

#[test]
fn smtpd_greylists_with_its_own_service_and_a_client_that_retried_passes_at_once() {
    let backend = Backend::start();
    let gw = greylist_gateway(&backend, "greylist_auto_whitelist_clients = 1\n");
    let first = attempt(gw.port, "127.0.0.2", "alice@sender.example", "marker-own-1");
    assert!(
        first.starts_with("450 4.2.0 <bob@example.com>: Recipient address rejected: Greylisted"),
        "{first}"
    );
    retry_until_accepted(gw.port, "127.0.0.2", "alice@sender.example", "marker-own-1");
    let received = backend.wait_for_message("marker-own-1");
    let header = received.header("X-Greylist");
    assert!(
        header.len() == 1 && header[0].starts_with("delayed "),
        "{header:?}"
    );
    gw.wait_for_log("action=pass, reason=triplet found");
    // The client retried once, as a real server does: it is whitelisted,
    // and a new triplet passes without delay.
    let reply = attempt(gw.port, "127.0.0.2", "carol@other.example", "marker-own-2");
    assert!(reply.starts_with("250"), "{reply}");
    gw.wait_for_log("reason=client AWL");
    // Another client is still greylisted.
    let other = attempt(gw.port, "127.0.0.3", "carol@other.example", "marker-own-3");
    assert!(other.starts_with("450 4.2.0"), "{other}");
}

/// Two gateways behind one MX: a triplet greylisted on one passes on the
/// other after the delay, because they share redis.
#[test]
fn two_gateways_share_greylisting_through_redis() {
    let redis = Redis::start();
    let backend = Backend::start();
    let extra = format!("greylist_database = {}\n", redis.spec(5));
    let first_gw = greylist_gateway(&backend, &extra);
    let second_gw = greylist_gateway(&backend, &extra);
    let first = attempt(
        first_gw.port,
        "127.0.0.2",
        "alice@sender.example",
        "marker-redis",
    );
    assert!(first.starts_with("450 4.2.0"), "{first}");
    let refused = retry_until_accepted(
        second_gw.port,
        "127.0.0.2",
        "alice@sender.example",
        "marker-redis",
    );
    assert!(
        refused.iter().all(|r| r.starts_with("450 4.2.0")),
        "{refused:?}"
    );
    backend.wait_for_message("marker-redis");
    // The second gateway never saw the triplet as new.
    assert!(
        !second_gw.log().contains("reason=new"),
        "{}\n--- first gateway ---\n{}",
        second_gw.log(),
        first_gw.log()
    );
}

/// A policy server that cannot be reached is never a pass: the service's
/// default_action (451 4.3.5 by default) answers.
#[test]
fn a_policy_server_that_cannot_be_asked_defers() {
    let backend = Backend::start();
    let closed = free_port();
    let gw = Gateway::start(
        &backend,
        &format!(
            "{RESTRICTIONS}check_policy_service {{ inet:127.0.0.1:{closed}, timeout=2s, try_limit=1 }}\n"
        ),
    );
    let reply = attempt(gw.port, "127.0.0.2", "alice@sender.example", "marker-down");
    // As Postfix words a default action that is a reply code.
    assert_eq!(
        reply,
        "451 4.3.5 <bob@example.com>: Recipient address rejected: Server configuration problem"
    );
    wait_for("the log to say why", || {
        gw.log()
            .lines()
            .find(|l| l.contains("problem talking to server") && l.contains(&closed.to_string()))
            .map(str::to_string)
    });
}
