//! relay's bounds per delivery, against a real DNS server (dnsmasq):
//! Postfix's smtp_mx_address_limit and smtp_mx_session_limit with 500 MX
//! records, an overall deadline (smtp_delivery_time_limit), and "mail for
//! X loops back to myself" when the next hop is this gateway.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mailgate_tests::{Backend, Client, DnsServer, Gateway, Record, message};

/// An SMTP server that greets and takes EHLO, then answers MAIL with a
/// temporary failure: every session counts, none delivers.
fn deferring_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sessions = Arc::new(AtomicUsize::new(0));
    let counter = sessions.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve_deferring(stream));
        }
    });
    (port, sessions)
}

fn serve_deferring(stream: TcpStream) {
    let mut out = stream.try_clone().expect("clone");
    let _ = out.write_all(b"220 busy.example ESMTP\r\n");
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 busy.example\r\n",
            "QUIT" => {
                let _ = out.write_all(b"221 bye\r\n");
                return;
            }
            "RSET" | "NOOP" => b"250 ok\r\n",
            _ => b"451 4.3.0 try again later\r\n",
        };
        if out.write_all(reply).is_err() {
            return;
        }
    }
}

fn send(gateway: &Gateway, to: &str, marker: &str) {
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message("a@sender.example", &[to], &message("limits", marker));
    assert!(reply.starts_with("250"), "{reply}");
    client.send("QUIT");
}

fn queue_id(log: &str, to: &str) -> String {
    log.lines()
        .find(|l| l.contains(&format!("to=<{to}>")))
        .and_then(|l| l.split(": ").nth(1))
        .expect("a delivery line")
        .to_string()
}

#[test]
fn five_hundred_mx_records_cost_five_addresses_and_two_sessions() {
    let (port, sessions) = deferring_server();
    let hosts: Vec<String> = (0..500).map(|i| format!("mx{i}.many.test")).collect();
    let mut records: Vec<Record> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| Record::Mx("many.test", host, i as u16))
        .collect();
    records.push(Record::Address("many.test", "127.0.0.1"));
    let dns = DnsServer::with(&records);
    let backend = Backend::start();
    let extra = format!(
        "dns_nameservers = {}\nrelay_domains = example.com, many.test\n\
         transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{} many.test=smtp:many.test:{port} }}\n",
        dns.nameserver(),
        backend.port
    );
    let gateway = Gateway::start(&backend, &extra);
    let started = Instant::now();
    send(&gateway, "u@many.test", "MANY-MX");
    let log = gateway.wait_for_log("status=deferred");
    let id = queue_id(&log, "u@many.test");
    // One delivery attempt: two sessions (smtp_mx_session_limit), the
    // first five addresses at most (smtp_mx_address_limit).
    assert_eq!(sessions.load(Ordering::SeqCst), 2, "{log}");
    let tried = log
        .lines()
        .filter(|l| l.contains(&id) && l.contains("451 4.3.0"))
        .count();
    assert!(tried <= 2, "{log}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn mail_for_ourselves_loops_back_and_bounces() {
    let dns = DnsServer::with(&[
        Record::Mx("loop.test", "mx.loop.test", 10),
        Record::Host("mx.loop.test", "127.0.0.1"),
    ]);
    let backend = Backend::start();
    // The gateway listens on 127.0.0.1 (inet_interfaces); loop.test's MX
    // is that address, port 25.
    let extra = format!(
        "dns_nameservers = {}\nrelay_domains = example.com, loop.test\n\
         transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{} loop.test=smtp:loop.test }}\n",
        dns.nameserver(),
        backend.port
    );
    let gateway = Gateway::start(&backend, &extra);
    send(&gateway, "u@loop.test", "LOOP");
    let log = gateway.wait_for_log("to=<u@loop.test>");
    let line = log
        .lines()
        .find(|l| l.contains("to=<u@loop.test>"))
        .expect("delivery line");
    assert!(line.contains("dsn=5.4.6"), "{line}");
    assert!(
        line.contains("status=bounced (mail for loop.test loops back to myself)"),
        "{line}"
    );
}

#[test]
fn a_delivery_that_hangs_is_cut_at_smtp_delivery_time_limit() {
    // Accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let backend = Backend::start();
    let extra = format!(
        "relay_domains = example.com, slow.test\n\
         transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{} slow.test=smtp:[127.0.0.1]:{port} }}\n\
         smtp_helo_timeout = 300s\nsmtp_delivery_time_limit = 3s\n",
        backend.port
    );
    let gateway = Gateway::start(&backend, &extra);
    let started = Instant::now();
    send(&gateway, "u@slow.test", "SLOW");
    let log = gateway.wait_for_log("smtp_delivery_time_limit");
    let line = log
        .lines()
        .find(|l| l.contains("to=<u@slow.test>"))
        .expect("delivery line");
    assert!(line.contains("status=deferred"), "{line}");
    assert!(line.contains("dsn=4.4.7"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(60), "{line}");
}

#[test]
fn lines_over_998_octets_reach_the_next_hop_broken_with_crlf_space() {
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    let long: String = (0..5000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let text = format!(
        "From: a@sender.example\nTo: b@example.com\nSubject: long\nX-Long: {long}\n\n{long}\nLONG-LINES\n"
    );
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message("a@sender.example", &["b@example.com"], &text);
    assert!(reply.starts_with("250"), "{reply}");
    let got = backend.wait_for_message("LONG-LINES").message;
    for line in got.split('\n') {
        assert!(
            line.trim_end_matches('\r').len() <= 998,
            "{} octets",
            line.len()
        );
    }
    // Unfolded, the header and the body line are what was sent.
    let unfolded = got.replace("\r\n ", "").replace("\n ", "");
    assert!(unfolded.contains(&format!("X-Long: {long}")));
    assert!(unfolded.contains(&format!("\n{long}")));
    gateway.wait_for_log("breaking line > 998 bytes with <CR><LF>SPACE");
}
