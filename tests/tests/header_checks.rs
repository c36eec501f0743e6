//! header_checks and body_checks actions that decide where a message
//! goes (FILTER, REDIRECT, BCC), end to end: a real gateway, smtp-sink
//! backends for the relay destination and the content filters, and the
//! log lines Postfix's cleanup writes for them.

use std::fs;

use mailgate_tests::{Backend, Client, Gateway, message, wait_for};

/// The tail Postfix's cleanup_act_log puts after the matched text.
const WHO: &str = "from localhost[127.0.0.1]; from=<a@sender.example> to=<b@example.com> \
                   proto=ESMTP helo=<client.example.org>";

#[test]
fn filter_redirect_and_bcc_route_the_message_as_in_postfix() {
    let backend = Backend::start();
    // content_filter's destination, and the one a FILTER action names.
    let default_filter = Backend::start();
    let filter = Backend::start();
    let gw = Gateway::configure(
        &backend,
        &format!(
            "content_filter = smtp:[127.0.0.1]:{}\n\
             header_checks = regexp:header_checks\n\
             body_checks = regexp:body_checks\n",
            default_filter.port
        ),
    );
    fs::write(
        gw.path("header_checks"),
        format!(
            "/^Subject: filter me/ FILTER smtp:[127.0.0.1]:{}\n\
             /^Subject: redirect me/ REDIRECT other@example.com\n\
             /^Subject: bcc me/ BCC copy@example.com\n\
             /^Subject: bad filter/ FILTER nocolon\n\
             /^Subject: unknown/ FROBNICATE now\n\
             /^X-After-Redirect:/ REJECT checks are off after REDIRECT\n",
            filter.port
        ),
    )
    .unwrap();
    fs::write(
        gw.path("body_checks"),
        "/^BODY-BCC/ BCC bodycopy@example.com\n",
    )
    .unwrap();
    // mailgate check names the entries cleanup would ignore, where they are.
    let (status, out, err) = gw.admin(&["check"]);
    assert_eq!(status, 0, "{out}{err}");
    let table = gw.path("header_checks");
    for expected in [
        format!(
            "{}:4: regexp:header_checks: bad FILTER command nocolon in header_checks -- need transport:destination",
            table.display()
        ),
        format!(
            "{}:5: regexp:header_checks: unknown command in header_checks map: FROBNICATE now",
            table.display()
        ),
    ] {
        assert!(
            out.contains(&expected) || err.contains(&expected),
            "{expected}\n{out}{err}"
        );
    }
    let gw = gw.launch();

    let mut c = Client::connect(gw.port, "127.0.0.1").unwrap();
    assert!(c.send("EHLO client.example.org").starts_with("250"));
    let mut send = |subject: &str, marker: &str| {
        let text = if subject == "redirect me" {
            message(subject, marker).replacen("\n\n", "\nX-After-Redirect: 1\n\n", 1)
        } else if subject == "body bcc" {
            format!("{}BODY-BCC\n", message(subject, marker))
        } else {
            message(subject, marker)
        };
        let reply = c.transaction("a@sender.example", &["b@example.com"], &text);
        assert!(reply.starts_with("250"), "{subject}: {reply}");
        reply.rsplit(' ').next().unwrap().to_string()
    };
    let plain = send("plain", "hbc-plain");
    let filtered = send("filter me", "hbc-filter");
    let redirected = send("redirect me", "hbc-redirect");
    let bcc = send("bcc me", "hbc-bcc");
    let body_bcc = send("body bcc", "hbc-body-bcc");
    let bad = send("bad filter", "hbc-bad");
    let unknown = send("unknown", "hbc-unknown");
    c.send("QUIT");

    // No action: content_filter.
    let got = default_filter.wait_for_message("hbc-plain");
    assert_eq!(got.rcpt_to, ["<b@example.com>"]);
    // FILTER overrides content_filter for this message only.
    let got = filter.wait_for_message("hbc-filter");
    assert_eq!(got.rcpt_to, ["<b@example.com>"]);
    let line = gw.wait_for_log(&format!("{filtered}: filter: header Subject: filter me"));
    assert!(
        line.ends_with(&format!(
            "{filtered}: filter: header Subject: filter me {WHO}: smtp:[127.0.0.1]:{}",
            filter.port
        )),
        "{line}"
    );
    // REDIRECT: the one recipient, delivered as routed (not through the
    // content filter: REDIRECT overrides it, as Postfix's qmgr has it);
    // the header after it was not checked any more.
    let got = backend.wait_for_message("hbc-redirect");
    assert_eq!(got.rcpt_to, ["<other@example.com>"]);
    let line = gw.wait_for_log(&format!(
        "{redirected}: redirect: header Subject: redirect me"
    ));
    assert!(
        line.ends_with(&format!(
            "{redirected}: redirect: header Subject: redirect me {WHO}: other@example.com"
        )),
        "{line}"
    );
    // BCC: one more recipient, both through the content filter.
    let got = default_filter.wait_for_message("hbc-bcc");
    let mut rcpts = got.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["<b@example.com>", "<copy@example.com>"]);
    let line = gw.wait_for_log(&format!("{bcc}: bcc: header Subject: bcc me"));
    assert!(
        line.ends_with(&format!(
            "{bcc}: bcc: header Subject: bcc me {WHO}: copy@example.com"
        )),
        "{line}"
    );
    // BCC from body_checks too.
    let got = default_filter.wait_for_message("hbc-body-bcc");
    let mut rcpts = got.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["<b@example.com>", "<bodycopy@example.com>"]);
    gw.wait_for_log(&format!(
        "{body_bcc}: bcc: body BODY-BCC {WHO}: bodycopy@example.com"
    ));
    // A bad FILTER and an unknown action: Postfix's warnings, and the
    // message goes on as if nothing had matched.
    gw.wait_for_log(
        "warning: bad FILTER command nocolon in header_checks -- need transport:destination",
    );
    gw.wait_for_log("warning: unknown command in header_checks map: FROBNICATE now");
    for (id, marker) in [(&bad, "hbc-bad"), (&unknown, "hbc-unknown")] {
        let got = default_filter.wait_for_message(marker);
        assert_eq!(got.rcpt_to, ["<b@example.com>"], "{id}");
    }
    // Nothing went anywhere else.
    wait_for("every message delivered once", || {
        let counts = (
            backend.messages().len(),
            filter.messages().len(),
            default_filter.messages().len(),
        );
        (counts == (1, 1, 5)).then_some(())
    });
    let _ = plain;
}
