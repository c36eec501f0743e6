//! Policy delegation and greylisting end to end, against real peers:
//! mailgate's policy client against Debian's postgrey; mailgate's greylist
//! service started by a real master (Unix and TCP sockets), confined, and
//! queried by the client and by a stock Postfix driven over SMTP; two
//! gateways sharing their greylisting state through a real redis-server,
//! and what happens when it dies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailgate_policy::{
    Action, Endpoint, PolicyClient, PolicySettings, Request, new_instance, state,
};
use mailgate_tests::{
    Backend, Client, DnsServer, Gateway, Postgrey, Redis, StockPostfix, free_port, is_root,
    message, wait_for,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn client(endpoint: &str) -> PolicyClient {
    let settings = PolicySettings {
        timeout: Duration::from_secs(10),
        retry_delay: Duration::from_millis(200),
        ..PolicySettings::default()
    };
    PolicyClient::new(Endpoint::parse(endpoint).expect("endpoint"), settings).expect("client")
}

/// A RCPT-stage request as Postfix's smtpd would send it.
fn rcpt(address: &str, name: &str, sender: &str, recipient: &str) -> Request {
    Request {
        protocol_name: "ESMTP".into(),
        client_address: address.into(),
        client_name: name.into(),
        reverse_client_name: name.into(),
        helo_name: "mx.sender.example".into(),
        sender: sender.into(),
        recipient: recipient.into(),
        instance: new_instance(),
        compatibility_level: "3.6".into(),
        mail_version: "mailgate".into(),
        ..Request::smtpd(state::RCPT)
    }
}

fn query(runtime: &tokio::runtime::Runtime, client: &PolicyClient, request: &Request) -> Action {
    runtime
        .block_on(client.query(request))
        .unwrap_or_else(|e| panic!("policy query: {e}"))
}

/// Asks again until the answer is no longer a greylisting deferral;
/// returns it and how long that took.
fn retry_until_passed(
    runtime: &tokio::runtime::Runtime,
    client: &PolicyClient,
    request: &Request,
) -> (Action, Duration) {
    let started = Instant::now();
    wait_for("the retry to pass greylisting", || {
        let action = query(runtime, client, request);
        (action.verb() != "DEFER_IF_PERMIT").then(|| (action, started.elapsed()))
    })
}

#[test]
fn the_policy_client_is_greylisted_by_a_real_postgrey_then_passes() {
    let postgrey = Postgrey::start(1);
    let runtime = runtime();
    let client = client(&format!("inet:127.0.0.1:{}", postgrey.port));
    let request = rcpt(
        "192.0.2.1",
        "unknown",
        "alice@sender.example",
        "bob@example.com",
    );
    let first = query(&runtime, &client, &request);
    assert_eq!(first.verb(), "DEFER_IF_PERMIT", "{first}");
    assert!(
        first
            .text()
            .contains("Greylisted, see http://postgrey.schweikert.ch/help/example.com.html"),
        "{first}"
    );
    let (passed, _) = retry_until_passed(&runtime, &client, &request);
    assert_eq!(passed.verb(), "PREPEND", "{passed}");
    assert!(
        passed.text().starts_with("X-Greylist: delayed ")
            && passed.text().contains("postgrey.test"),
        "{passed}"
    );
    // The next message of the same triplet passes without a header.
    let next = Request {
        instance: new_instance(),
        ..request.clone()
    };
    assert_eq!(query(&runtime, &client, &next).as_str(), "DUNNO");

    // Without its server, the client gets no action, and the caller the
    // default one: a 4xx, never a pass.
    drop(postgrey);
    let fallback = runtime.block_on(client.query_or_default(&next));
    assert_eq!(fallback.as_str(), "451 4.3.5 Server configuration problem");
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn etc(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../etc")
        .join(name)
}

/// main.cf lines for a gateway with greylisting: a short delay, postgrey's
/// whitelists as shipped in etc/, and a data_directory of its own.
fn greylist_main_cf(gateway: &Gateway, extra: &str) {
    gateway.add_main_cf(&format!(
        "data_directory = {data}\n\
         greylist_delay = 1s\n\
         greylist_whitelist_clients = texthash:{hosts}, pcre:{hosts}.pcre, cidr:{hosts}.cidr\n\
         greylist_whitelist_recipients = texthash:{recipients}\n\
         {extra}",
        data = gateway.path("data").display(),
        hosts = etc("greylist_whitelist_clients").display(),
        recipients = etc("greylist_whitelist_recipients").display(),
    ));
}

/// A gateway running greylist services (master.cf lines in `services`).
fn greylist_gateway(backend: &Backend, services: &str, extra: &str) -> Gateway {
    let gateway = Gateway::configure(backend, "");
    greylist_main_cf(&gateway, extra);
    gateway.add_master_cf(services);
    gateway.launch()
}

fn unix_endpoint(gateway: &Gateway) -> String {
    format!("unix:{}", gateway.spool("private/greylist").display())
}

#[test]
fn the_greylist_service_answers_on_unix_and_tcp_sockets_confined_and_logs_as_postgrey() {
    let backend = Backend::start();
    let port = free_port();
    let gateway = greylist_gateway(
        &backend,
        &format!(
            "greylist unix - - y - - greylist\n\
             127.0.0.1:{port} inet n - y - - greylist -o greylist_database=redb:$data_directory/greylist-tcp.redb"
        ),
        "",
    );
    let runtime = runtime();
    for endpoint in [unix_endpoint(&gateway), format!("inet:127.0.0.1:{port}")] {
        let client = client(&endpoint);
        let request = rcpt(
            "192.0.2.1",
            "unknown",
            "alice@sender.example",
            "bob@example.com",
        );
        let first = wait_for("the greylist service to answer", || {
            runtime.block_on(client.query(&request)).ok()
        });
        assert_eq!(
            first.as_str(),
            "DEFER_IF_PERMIT 4.2.0 Greylisted, see http://postgrey.schweikert.ch/help/example.com.html",
            "{endpoint}"
        );
        let (passed, waited) = retry_until_passed(&runtime, &client, &request);
        assert!(
            passed.as_str().starts_with(
                "PREPEND X-Greylist: delayed 1 seconds by mailgate-greylist at gw.example.com; "
            ),
            "{endpoint}: {passed}"
        );
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // Another recipient of the same message is a new triplet.
        let other = Request {
            recipient: "carol@example.com".into(),
            ..request.clone()
        };
        assert_eq!(query(&runtime, &client, &other).verb(), "DEFER_IF_PERMIT");
        // postgrey's whitelists, as shipped: a big sender, and postmaster@.
        let amazon = rcpt(
            "192.0.2.1",
            "smtp-out.amazon.com",
            "a@amazon.com",
            "bob@example.com",
        );
        assert_eq!(query(&runtime, &client, &amazon).as_str(), "DUNNO");
        let postmaster = rcpt(
            "192.0.2.1",
            "unknown",
            "a@b.example",
            "postmaster@example.com",
        );
        assert_eq!(query(&runtime, &client, &postmaster).as_str(), "DUNNO");
    }
    for line in [
        "action=greylist, reason=new, client_name=unknown, client_address=192.0.2.1, sender=alice@sender.example, recipient=bob@example.com",
        "action=pass, reason=triplet found, delay=1, client_name=unknown, client_address=192.0.2.1",
        "action=pass, reason=client whitelist, client_name=smtp-out.amazon.com",
        "action=pass, reason=recipient whitelist, client_name=unknown, client_address=192.0.2.1, sender=a@b.example, recipient=postmaster@example.com",
    ] {
        gateway.wait_for_log(line);
    }

    // Both greylist processes run confined, and `mailgate status` shows it.
    let data = std::fs::canonicalize(gateway.path("data")).expect("data directory");
    let pids = gateway.worker_pids("greylist");
    assert_eq!(pids.len(), 2, "{pids:?}");
    let (code, status, err) = gateway.admin(&["status"]);
    assert_eq!(code, 0, "{err}");
    for pid in pids {
        let line = status
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(&pid.to_string()))
            .unwrap_or_else(|| panic!("status has no line for greylist {pid}:\n{status}"));
        assert!(line.contains(" greylist "), "{line}");
        assert!(
            line.contains(" 1          2 (filter) enforced (ABI "),
            "{line}"
        );
        if is_root() {
            assert!(line.contains(&data.display().to_string()), "{line}");
            assert!(
                line.contains(" 0000000000000000 0000000000000000 0000000000000000 "),
                "{line}"
            );
            assert!(!line.contains(" 0 "), "no uid or gid 0: {line}");
        }
    }
    assert!(
        !gateway.log().contains("killed by signal"),
        "{}",
        gateway.log()
    );
}

#[test]
fn a_client_that_retried_passes_at_once_and_garbage_gets_no_answer() {
    let backend = Backend::start();
    let gateway = greylist_gateway(
        &backend,
        "greylist unix - - y - - greylist",
        "greylist_auto_whitelist_clients = 1\n",
    );
    let runtime = runtime();
    let client = client(&unix_endpoint(&gateway));
    let first = rcpt(
        "198.51.100.7",
        "mx.sender.example",
        "a@sender.example",
        "bob@example.com",
    );
    wait_for("the greylist service to answer", || {
        runtime.block_on(client.query(&first)).ok()
    });
    let (passed, _) = retry_until_passed(&runtime, &client, &first);
    assert_eq!(passed.verb(), "PREPEND");
    gateway.wait_for_log("whitelisted: mx.sender.example[198.51.100.7]");
    // A new sender and recipient from that client: no delay.
    let fresh = rcpt(
        "198.51.100.7",
        "mx.sender.example",
        "z@other.example",
        "dave@example.com",
    );
    assert_eq!(query(&runtime, &client, &fresh).as_str(), "DUNNO");
    gateway.wait_for_log("action=pass, reason=client AWL, client_name=mx.sender.example");
    // Its neighbour is not whitelisted.
    let neighbour = Request {
        client_address: "198.51.100.8".into(),
        ..fresh.clone()
    };
    assert_eq!(
        query(&runtime, &client, &neighbour).verb(),
        "DEFER_IF_PERMIT"
    );

    // A malformed request is answered by nothing but a closed connection
    // and a warning; the service goes on.
    use std::io::{Read, Write};
    let mut raw = std::os::unix::net::UnixStream::connect(gateway.spool("private/greylist"))
        .expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    raw.write_all(b"request=smtpd_access_policy\nthis is not an attribute\n\n")
        .expect("write");
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer)
        .expect("the service closes the connection");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    gateway.wait_for_log("bad policy request: line is not name=value: \"this is not an attribute\"; closing the connection");
    let long = format!(
        "request=smtpd_access_policy\nsender={}\n\n",
        "x".repeat(100_000)
    );
    let mut raw = std::os::unix::net::UnixStream::connect(gateway.spool("private/greylist"))
        .expect("connect");
    let _ = raw.write_all(long.as_bytes());
    gateway.wait_for_log("bad policy request: line longer than 8192 bytes");
    assert_eq!(query(&runtime, &client, &fresh).as_str(), "DUNNO");
}

#[test]
fn check_refuses_two_greylist_services_on_one_database_file() {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    greylist_main_cf(&gateway, "");
    gateway
        .add_master_cf("greylist unix - - y - - greylist\n127.0.0.1:10023 inet n - y - - greylist");
    let (code, _, err) = gateway.admin(&["check"]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("services greylist and 127.0.0.1:10023 both keep their state in redb:"),
        "{err}"
    );
    assert!(err.contains("master.cf:"), "{err}");
    gateway.add_main_cf("greylist_database = redb:relative.redb");
    let (code, _, err) = gateway.admin(&["check"]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(
            "greylist_database: \"redb:relative.redb\": the database file must be an absolute path"
        ),
        "{err}"
    );
}

#[test]
fn a_stock_postfix_is_greylisted_by_the_greylist_service() {
    let backend = Backend::start();
    let port = free_port();
    let gateway = greylist_gateway(
        &backend,
        &format!("127.0.0.1:{port} inet n - y - - greylist"),
        "",
    );
    wait_for("the greylist service to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let dns = DnsServer::on_port_53(&[]);
    let postfix = StockPostfix::start(
        &format!("smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{port}"),
        backend.port,
        &dns,
    );
    let attempt = || {
        let mut client = Client::connect(postfix.port, "127.0.0.1").expect("connect");
        let reply = client.send_message(
            "alice@sender.example",
            &["bob@example.com"],
            &message("greylisted through Postfix", "MARKER-STOCK-POSTFIX"),
        );
        client.send("QUIT");
        reply
    };
    let first = attempt();
    assert_eq!(
        first,
        "450 4.2.0 <bob@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html"
    );
    let started = Instant::now();
    let accepted = wait_for("Postfix to accept the retry", || {
        let reply = attempt();
        if reply.starts_with("450 4.2.0") {
            std::thread::sleep(Duration::from_millis(200));
            return None;
        }
        Some(reply)
    });
    assert!(
        accepted.starts_with("250 2.0.0 Ok: queued as "),
        "{accepted}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let received = backend.wait_for_message("MARKER-STOCK-POSTFIX");
    let header = received.header("X-Greylist");
    assert_eq!(header.len(), 1, "{}", received.message);
    assert!(
        header[0].starts_with("delayed ")
            && header[0].contains("seconds by mailgate-greylist at gw.example.com; "),
        "{}",
        header[0]
    );
    assert!(postfix.log().contains(
        "[127.0.0.1]: 450 4.2.0 <bob@example.com>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html; from=<alice@sender.example> to=<bob@example.com> proto=ESMTP"
    ), "{}", postfix.log());
    gateway.wait_for_log(
        "client_address=127.0.0.1, sender=alice@sender.example, recipient=bob@example.com",
    );
    gateway.wait_for_log("action=greylist, reason=new, client_name=");
}

#[test]
fn two_gateways_share_greylisting_through_redis_and_defer_while_it_is_down() {
    let mut redis = Redis::start();
    let backend = Backend::start();
    let ports = [free_port(), free_port()];
    let extra = format!(
        "greylist_database = {}\ngreylist_delay = 2s\n",
        redis.spec(3)
    );
    let gateways: Vec<Gateway> = ports
        .iter()
        .map(|port| {
            greylist_gateway(
                &backend,
                &format!("127.0.0.1:{port} inet n - y - - greylist"),
                &extra,
            )
        })
        .collect();
    let runtime = runtime();
    let clients: Vec<PolicyClient> = ports
        .iter()
        .map(|port| client(&format!("inet:127.0.0.1:{port}")))
        .collect();
    let request = rcpt(
        "203.0.113.5",
        "unknown",
        "alice@sender.example",
        "bob@example.com",
    );
    let first = wait_for("the first gateway's greylist service", || {
        runtime.block_on(clients[0].query(&request)).ok()
    });
    assert_eq!(first.verb(), "DEFER_IF_PERMIT");
    // A second later, the second gateway knows the triplet: an early
    // retry, not a new one.
    let first_second = unix_seconds();
    wait_for("the next second", || {
        (unix_seconds() > first_second).then_some(())
    });
    let second = query(&runtime, &clients[1], &request);
    assert_eq!(second.verb(), "DEFER_IF_PERMIT");
    gateways[1].wait_for_log("action=greylist, reason=early-retry (");
    assert!(
        !gateways[1].log().contains("reason=new"),
        "{}",
        gateways[1].log()
    );
    // After the delay, the retry passes on the other gateway.
    let (passed, _) = retry_until_passed(&runtime, &clients[1], &request);
    assert!(
        passed.as_str().starts_with("PREPEND X-Greylist: delayed "),
        "{passed}"
    );
    gateways[1].wait_for_log("action=pass, reason=triplet found");

    // Redis dies: a 4xx action, never a pass, and no process dies.
    let pids = gateways[0].worker_pids("greylist");
    redis.kill();
    let known = Request {
        instance: new_instance(),
        ..request.clone()
    };
    let down = query(&runtime, &clients[0], &known);
    assert_eq!(
        down.as_str(),
        "DEFER_IF_PERMIT 4.3.0 Greylisting temporary failure"
    );
    gateways[0].wait_for_log(&format!(
        "warning: greylist database redis:127.0.0.1:{}/3: ",
        redis.port
    ));
    assert_eq!(gateways[0].worker_pids("greylist"), pids);
    assert!(
        !gateways[0].log().contains("killed by signal"),
        "{}",
        gateways[0].log()
    );

    // Redis comes back (empty, as it saved nothing): greylisting resumes.
    redis.restart();
    let recovered = wait_for("greylisting to resume", || {
        let action = query(&runtime, &clients[0], &known);
        (action.as_str() != "DEFER_IF_PERMIT 4.3.0 Greylisting temporary failure").then_some(action)
    });
    assert!(
        recovered
            .as_str()
            .starts_with("DEFER_IF_PERMIT 4.2.0 Greylisted"),
        "{recovered}"
    );
    assert_eq!(gateways[0].worker_pids("greylist"), pids);
}
