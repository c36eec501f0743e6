//! mynetworks_style end to end: with mynetworks unset, the trusted clients
//! are computed from the machine's addresses (inet_interfaces =
//! 127.0.0.1 on the loopback interface, 127.0.0.0/8) as Postfix computes
//! them: `host` trusts 127.0.0.1 only, `subnet` and `class` all of
//! 127.0.0.0/8.

use std::fs;

use mailgate_tests::{Backend, Client, Gateway};

/// The reply to a relaying attempt from 127.0.0.2 and from 127.0.0.1.
fn relay_replies(style: &str) -> (String, String) {
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, &format!("mynetworks_style = {style}\n"));
    let main_cf = fs::read_to_string(gateway.path("main.cf")).expect("main.cf");
    let main_cf: String = main_cf
        .lines()
        .filter(|l| !l.starts_with("mynetworks ="))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(gateway.path("main.cf"), main_cf).expect("main.cf");
    let gateway = gateway.launch();
    let (_, out, err) = gateway.admin(&["config", "mynetworks"]);
    println!("{style}: {out}{err}");
    let attempt = |from: &str| {
        let mut client = Client::connect(gateway.port, from).expect("connect");
        client.send("EHLO client.test");
        client.send("MAIL FROM:<a@client.test>");
        let reply = client.send("RCPT TO:<x@elsewhere.test>");
        client.send("QUIT");
        reply
    };
    (attempt("127.0.0.2"), attempt("127.0.0.1"))
}

#[test]
fn host_trusts_the_machine_subnet_and_class_its_networks() {
    let denied = "554 5.7.1 <x@elsewhere.test>: Relay access denied";
    let (other, own) = relay_replies("host");
    assert_eq!(other, denied);
    assert!(own.starts_with("250 2.1.5"), "{own}");
    for style in ["subnet", "class"] {
        let (other, own) = relay_replies(style);
        assert!(other.starts_with("250 2.1.5"), "{style}: {other}");
        assert!(own.starts_with("250 2.1.5"), "{style}: {own}");
    }
}
