//! Behind a content filter, the mail a filter re-injects with XFORWARD is
//! judged by its original client: DKIM signing (the organisation's own
//! mail) follows the forwarded address, not the filter's, so mail from
//! outside that comes back through the re-injection listener is never
//! signed as the organisation.

use std::fs;

use mailgate_tests::{Backend, Client, Gateway};

#[test]
fn reinjected_mail_is_signed_only_when_its_original_client_is_ours() {
    let backend = Backend::start();
    let gw = Gateway::configure(&backend, "smtpd_authorized_xforward_hosts = 127.0.0.0/8\n")
        .with_master_cf("tlskeys unix - - y - - tlskeys\n");
    let dir = gw.dir.path().to_path_buf();
    let (status, _, stderr) = gw.admin(&[
        "dkim",
        "keygen",
        "example.org",
        "sel1",
        "-D",
        &dir.display().to_string(),
    ]);
    assert_eq!(status, 0, "{stderr}");
    fs::write(
        dir.join("dkim_keys"),
        format!(
            "k example.org:sel1:{}\n",
            dir.join("sel1.example.org.pem").display()
        ),
    )
    .unwrap();
    fs::write(dir.join("dkim_signing"), "example.org k\n").unwrap();
    gw.add_main_cf(&format!(
        "dkim_signing_table = texthash:{d}/dkim_signing\ndkim_key_table = texthash:{d}/dkim_keys\n\
         tlskeys_directory = {d}/tlskeys\n",
        d = dir.display()
    ));
    let gw = gw.launch();

    let send = |xforward: Option<&str>, marker: &str| {
        // 127.0.0.1: in mynetworks, as a content filter's re-injection is.
        let mut client = Client::connect(gw.port, "127.0.0.1").unwrap();
        assert!(client.send("EHLO filter.example.org").starts_with("250"));
        if let Some(attributes) = xforward {
            let reply = client.send(&format!("XFORWARD {attributes}"));
            assert!(reply.starts_with("250"), "{reply}");
        }
        let message =
            format!("From: Alice <alice@example.org>\nTo: b@example.com\nSubject: x\n\n{marker}\n");
        let reply = client.transaction("alice@example.org", &["b@example.com"], &message);
        assert!(reply.starts_with("250"), "{reply}");
        backend.wait_for_message(marker).header("DKIM-Signature")
    };

    // Without XFORWARD: the client is ours, the mail is signed.
    assert_eq!(send(None, "marker-xf-own").len(), 1);
    // Re-injected mail that came from outside: not signed, though the
    // filter is in mynetworks and the From: is ours.
    assert!(
        send(
            Some(
                "NAME=mx.example.net ADDR=192.0.2.5 PROTO=ESMTP HELO=mx.example.net SOURCE=REMOTE"
            ),
            "marker-xf-remote"
        )
        .is_empty()
    );
    // A forwarded client in mynetworks, and local submission: signed.
    assert_eq!(
        send(Some("NAME=localhost ADDR=127.0.0.1"), "marker-xf-mynet").len(),
        1
    );
    assert_eq!(send(Some("SOURCE=LOCAL"), "marker-xf-local").len(), 1);
}
