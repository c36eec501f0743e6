//! Unit tests of the header and body checks.

use super::*;

/// The log as `ACTION: WHAT: TEXT` lines (and `warning: TEXT`).
fn logged(out: &Outcome) -> Vec<String> {
    out.log
        .iter()
        .map(|l| match l {
            Logged::Act { action, what, text } => format!("{action}: {what}: {text}"),
            Logged::Warning(w) => format!("warning: {w}"),
        })
        .collect()
}

fn table(dir: &std::path::Path, name: &str, text: &str) -> Vec<Table> {
    std::fs::write(dir.join(name), text).unwrap();
    vec![Table::open(&format!("regexp:{name}"), dir).unwrap()]
}

const SEED_HEADERS: &str = "/^Subject: .*retire early/ REJECT\n\
    /^Subject: Got Debt? [7xkeh].*/ REJECT\n\
    /^From: \"Martina & Laura\" <blackgirls@libero.it>/ REJECT\n\
    /.+name=.+\\.(hta|com|pif|vbs|vbe|js|jse|exe|bat|cmd|vxd|scr|shm|eml|hlp|spl|swf|shb|vba|dll|reg|ocx|wsf|wsh|lnkr|cpl)\"?$/ REJECT\n\
    /^X-Warn-Me:/ WARN watch this\n\
    /^X-Hold-Me:/ HOLD\n\
    /^X-Drop-Me:/ DISCARD\n\
    /^X-Strip-Me:/ IGNORE\n\
    /^X-Old: (.*)/ REPLACE X-New: $1\n\
    /^X-Tagged:/ PREPEND X-Note: seen\n\
    /^Subject: custom/ REJECT 5.7.0 we do not want this\n\
    /^Subject: later/ REJECT 4.7.1 not now\n";

const SEED_BODY: &str = "/^TV[nopqr]....[AB]..A.A....*AAAA...*AAAA/ REJECT\n\
    /^M35[GHIJK].`..`..*````/ REJECT\n\
    /^UEsDBAoAAAAAA/ REJECT\n\
    /^remove this line$/ IGNORE\n";

fn checks(dir: &std::path::Path) -> Checks {
    let header = table(dir, "header_checks", SEED_HEADERS);
    Checks {
        mime: header.clone(),
        nested: header.clone(),
        header,
        body: table(dir, "body_checks", SEED_BODY),
    }
}

#[test]
fn seed_examples_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let c = checks(dir.path());
    let out = c.apply(b"From: a@b\r\nSubject: How to retire early\r\n\r\nhi\r\n");
    let reject = out.reject.unwrap();
    assert_eq!((reject.code, reject.status.as_str()), (550, "5.7.1"));
    assert_eq!(reject.text, "message content rejected");

    // A folded Subject is matched unfolded.
    let out = c.apply(b"Subject: plan to\r\n retire early\r\n\r\nhi\r\n");
    assert!(out.reject.is_some());

    let exe = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
        --b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\n\
        Content-Type: application/octet-stream; name=\"a.exe\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n\
        TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA4fug4AtAnNIbgBTM0hVGhpcyBwcm9ncmFt\r\n\
        --b1--\r\n";
    let out = c.apply(exe);
    assert!(out.reject.is_some(), "{:?}", out.log);
    assert!(
        logged(&out)[0].contains("header Content-Type:"),
        "{:?}",
        out.log
    );

    // The same body without the name: the body check still catches it.
    let body_only = String::from_utf8_lossy(exe).replace("; name=\"a.exe\"", "");
    let out = c.apply(body_only.as_bytes());
    assert!(
        logged(&out)[0].starts_with("reject: body TVqQ"),
        "{:?}",
        out.log
    );

    let clean = b"From: a@b\r\nSubject: lunch\r\n\r\nsee you\r\n";
    assert_eq!(c.apply(clean), Outcome::default());
}

#[test]
fn actions() {
    let dir = tempfile::tempdir().unwrap();
    let c = checks(dir.path());
    let out = c.apply(
        b"X-Warn-Me: 1\r\nX-Strip-Me: 2\r\nX-Old: value\r\nX-Tagged: 3\r\nX-Hold-Me: 4\r\n\r\n\
          keep\r\nremove this line\r\nend\r\n",
    );
    assert_eq!(out.reject, None);
    assert!(out.hold.is_some());
    assert_eq!(logged(&out)[0], "warning: header X-Warn-Me: 1: watch this");
    assert_eq!(
        String::from_utf8(out.rewritten.unwrap()).unwrap(),
        "X-Warn-Me: 1\r\nX-New: value\r\nX-Note: seen\r\nX-Tagged: 3\r\nX-Hold-Me: 4\r\n\r\nkeep\r\nend\r\n"
    );
    let out = c.apply(b"X-Drop-Me: yes\r\n\r\nbody\r\n");
    assert!(out.discard.is_some());
    let out = c.apply(b"Subject: custom\r\n\r\nbody\r\n");
    let reply = out.reject.unwrap();
    assert_eq!(reply.status, "5.7.0");
    assert_eq!(reply.text, "we do not want this");
    // A code of class 4 defers, as in Postfix's cleanup.
    let reply = c.apply(b"Subject: later\r\n\r\nbody\r\n").reject.unwrap();
    assert_eq!((reply.code, reply.status.as_str()), (451, "4.7.1"));
    assert_eq!(reply.text, "not now");
}

#[test]
fn each_header_meets_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let c = Checks {
        header: table(
            dir.path(),
            "h",
            "/^X-A:/ WARN primary\n/^Content-/ WARN wrong\n",
        ),
        mime: table(
            dir.path(),
            "m",
            "/^Content-Type:/ WARN mime\n/^X-A:/ WARN part\n",
        ),
        nested: table(
            dir.path(),
            "n",
            "/^X-A:/ WARN nested\n/^Content-/ WARN wrong\n",
        ),
        body: Vec::new(),
    };
    let message = b"X-A: 1\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n\
        preamble\r\n--zz\r\nX-A: 2\r\nContent-Type: message/rfc822\r\n\r\n\
        X-A: 3\r\nContent-Type: text/plain\r\n\r\nbody\r\n--zz--\r\n";
    let out = c.apply(message);
    let lines = logged(&out);
    let warned: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit(": ").next().unwrap())
        .collect();
    assert_eq!(
        warned,
        ["primary", "mime", "part", "mime", "nested", "mime"],
        "{:?}",
        out.log
    );
}

/// Fails on the code before mailgate-mime: cleanup matched a
/// boundary as a prefix and took the last Content-Type, so lines the
/// banned check and the spam engine read as body text went to
/// mime_header_checks, and a part they read went unchecked.
#[test]
fn parts_are_the_ones_the_other_checks_read() {
    let dir = tempfile::tempdir().unwrap();
    let c = Checks {
        mime: table(dir.path(), "m", "/^Content-Type:.*name=/ WARN mime\n"),
        body: table(dir.path(), "b", "/^Content-Type:.*name=/ WARN body\n"),
        ..Checks::default()
    };
    let warned = |message: &[u8]| -> Vec<String> {
        logged(&c.apply(message))
            .iter()
            .map(|l| l.rsplit(": ").next().unwrap().to_string())
            .collect()
    };
    // `--qq` is not a delimiter of boundary q: the line after it is text.
    let prefix = b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nhi\r\n\
        --qq\r\nContent-Type: application/x; name=a.exe\r\n\r\n--q--\r\n";
    assert_eq!(warned(prefix), ["body"]);
    // Of two Content-Types the first counts: a multipart, whose part
    // header goes to mime_header_checks.
    let twice = b"Content-Type: multipart/mixed; boundary=q\r\nContent-Type: text/plain\r\n\r\n\
        --q\r\nContent-Type: application/x; name=a.exe\r\n\r\nx\r\n--q--\r\n";
    assert_eq!(warned(twice), ["mime"]);
}

#[test]
fn filter_redirect_and_bcc_decide_where_the_message_goes() {
    let dir = tempfile::tempdir().unwrap();
    let c = Checks {
        header: table(
            dir.path(),
            "h",
            "/^X-Filter: (.*)/ FILTER $1\n\
             /^X-Bcc: (.*)/ BCC $1\n\
             /^X-Redirect: (.*)/ REDIRECT $1\n\
             /^X-After:/ REJECT too late\n",
        ),
        body: table(
            dir.path(),
            "b",
            "/^body filter/ FILTER smtp:[127.0.0.1]:10026\n/^body bcc/ BCC body@example.com\n",
        ),
        ..Checks::default()
    };
    // The last FILTER wins, the body's included; BCC adds up.
    let out = c.apply(
        b"X-Filter: smtp:[127.0.0.1]:10025\r\nX-Bcc: one@example.com\r\n\
          X-Bcc: two@example.com\r\n\r\nbody bcc\r\nbody filter\r\n",
    );
    assert_eq!(out.filter.as_deref(), Some("smtp:[127.0.0.1]:10026"));
    assert_eq!(
        out.bcc,
        ["one@example.com", "two@example.com", "body@example.com"]
    );
    assert_eq!(out.redirect, None);
    assert_eq!(out.rewritten, None);
    assert_eq!(
        out.log[0],
        Logged::Act {
            action: "filter",
            what: "header X-Filter: smtp:[127.0.0.1]:10025".into(),
            text: "smtp:[127.0.0.1]:10025".into(),
        }
    );
    assert_eq!(
        logged(&out)[1..],
        [
            "bcc: header X-Bcc: one@example.com: one@example.com",
            "bcc: header X-Bcc: two@example.com: two@example.com",
            "bcc: body body bcc: body@example.com",
            "filter: body body filter: smtp:[127.0.0.1]:10026",
        ]
    );
    // REDIRECT turns the checks off for the rest of the message
    // (Postfix's CLEANUP_FLAG_FILTER): the REJECT after it never fires.
    let out = c.apply(
        b"X-Redirect: other@example.com\r\nX-After: 1\r\nX-Bcc: late@example.com\r\n\r\nbody filter\r\n",
    );
    assert_eq!(out.redirect.as_deref(), Some("other@example.com"));
    assert_eq!((&out.reject, &out.filter, out.bcc.len()), (&None, &None, 0));
    assert_eq!(
        logged(&out),
        ["redirect: header X-Redirect: other@example.com: other@example.com"]
    );
}

#[test]
fn bad_arguments_and_unknown_actions_warn_and_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let header = table(
        dir.path(),
        "h",
        "/^X-Filter:/ FILTER nocolon\n\
         /^X-Redirect:/ REDIRECT nobody\n\
         /^X-Bcc:/ BCC nobody\n\
         /^X-Replace:/ REPLACE not a header\n\
         /^X-Unknown:/ FROBNICATE now\n\
         /^X-Strip:/ STRIP stripped\n\
         /^X-Pass:/ PASS trusted\n\
         /^X-Late:/ REJECT\n",
    );
    let c = Checks {
        mime: header.clone(),
        nested: header.clone(),
        header,
        body: table(dir.path(), "b", "/^line/ DELAY 1h\n"),
    };
    let out = c.apply(
        b"X-Filter: 1\r\nX-Redirect: 2\r\nX-Bcc: 3\r\nX-Replace: 4\r\nX-Unknown: 5\r\n\
          X-Strip: 6\r\n\r\nline\r\n",
    );
    assert_eq!(
        logged(&out),
        [
            "warning: bad FILTER command nocolon in header_checks -- need transport:destination",
            "warning: bad REDIRECT target \"nobody\" in header_checks map -- need user@domain",
            "warning: bad BCC address \"nobody\" in header_checks map -- need user@domain",
            "warning: bad REPLACE header text \"not a header\" in header_checks map -- need \"headername: headervalue\"",
            "warning: unknown command in header_checks map: FROBNICATE now",
            "strip: header X-Strip: 6: stripped",
            "warning: unknown command in body_checks map: DELAY 1h",
        ]
    );
    assert_eq!((out.filter, out.redirect, out.bcc.len()), (None, None, 0));
    // Only STRIP changed the message.
    assert_eq!(
        String::from_utf8(out.rewritten.unwrap()).unwrap(),
        "X-Filter: 1\r\nX-Redirect: 2\r\nX-Bcc: 3\r\nX-Replace: 4\r\nX-Unknown: 5\r\n\r\nline\r\n"
    );
    // PASS: no more checks for this message.
    let out = c.apply(b"X-Pass: 1\r\nX-Late: 2\r\n\r\nbody\r\n");
    assert_eq!(out.reject, None);
    assert_eq!(logged(&out), ["pass: header X-Pass: 1: trusted"]);
}

#[test]
fn hostile_input_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let c = checks(dir.path());
    let mut deep = String::new();
    for i in 0..100 {
        deep.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    let _ = c.apply(deep.as_bytes());
    for input in [
        &b""[..],
        b"\r\n",
        b":\r\n \r\n",
        b"\xff\xfe: \xff\r\n\r\n\xff",
        b"Content-Type: multipart/x; boundary=\"\r\n\r\n--\r\n",
        b"no header\r\nSubject: retire early\r\n",
    ] {
        let _ = c.apply(input);
    }
}

#[test]
fn subject_tag() {
    assert_eq!(
        tag_subject(
            b"From: a\r\nSubject: hi\r\n\r\nSubject: body\r\n",
            "***SPAM***"
        ),
        b"From: a\r\nSubject: ***SPAM*** hi\r\n\r\nSubject: body\r\n"
    );
    assert_eq!(
        tag_subject(b"From: a\r\n\r\nbody\r\n", "[S]"),
        b"From: a\r\nSubject: [S]\r\n\r\nbody\r\n"
    );
    assert_eq!(
        tag_subject(b"SUBJECT:x\r\n\r\n", "[S]"),
        b"SUBJECT: [S] x\r\n\r\n"
    );
}
