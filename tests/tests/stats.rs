//! The gateway's own statistics against real traffic: the stats service
//! counts what the log says, `mailgate stats` (text, JSON, graphs) and
//! `/metrics` show the same numbers, they survive a restart without being
//! counted twice, and Debian's pflogsumm, reading the same log, agrees.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use mailgate_tests::{Backend, Client, Gateway, free_port, message, wait_for};
use serde_json::Value;

fn stats_json(gateway: &Gateway) -> Value {
    let (code, out, err) = gateway.admin(&["stats", "--json"]);
    assert_eq!(code, 0, "mailgate stats --json: {err}");
    serde_json::from_str(&out).expect("stats JSON")
}

/// The statistics once the stats service has counted the whole log.
fn caught_up(gateway: &Gateway) -> Value {
    wait_for("the stats service to reach the end of the log", || {
        let json = stats_json(gateway);
        let length = fs::metadata(gateway.path("maillog")).ok()?.len();
        (json["log_offset"].as_u64() == Some(length)).then_some(json)
    })
}

fn metrics(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    response
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// pflogsumm's "Grand Totals" figure on the line ending with `label`.
fn pflogsumm_total(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            let n = words.next()?.parse().ok()?;
            (words.next()? == label).then_some(n)
        })
        .unwrap_or_else(|| panic!("pflogsumm has no {label} total:\n{report}"))
}

fn deferrals(report: &str) -> u64 {
    report
        .lines()
        .find_map(|l| {
            let inner = l.split_once("deferred  (")?.1;
            inner.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

#[test]
fn stats_metrics_graphs_and_pflogsumm_agree_on_a_test_run() {
    let backend = Backend::start();
    let refusing = Backend::start_with(&["-f", "RCPT"]);
    let dead = free_port();
    let stats_port = free_port();
    let gateway = Gateway::configure(
        &backend,
        &format!(
            "relay_domains = example.com, bounce.example, dead.example\n\
             transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{}, \
             bounce.example=smtp:[127.0.0.1]:{}, dead.example=smtp:[127.0.0.1]:{dead} }}\n\
             header_checks = regexp:header_checks\n\
             smtpd_recipient_restrictions = check_recipient_access hash:greylist\n",
            backend.port, refusing.port
        ),
    );
    fs::write(
        gateway.path("header_checks"),
        "/^Subject: .*retire early/ REJECT\n",
    )
    .unwrap();
    fs::write(
        gateway.path("greylist"),
        "grey@example.com DEFER Greylisted, see https://postgrey.schweikert.ch/help/example.com.html\n",
    )
    .unwrap();
    gateway.add_master_cf(&format!("127.0.0.1:{stats_port} inet n - y - 1 stats"));
    let mut gateway = gateway.launch();

    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    for n in 0..3 {
        let reply = client.send_message(
            "s@example.com",
            &["ok@example.com"],
            &message("hello", &format!("OK-{n}")),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    let reply = client.transaction(
        "s@example.com",
        &["x@bounce.example"],
        &message("b", "BOUNCE"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let reply = client.transaction("s@example.com", &["y@dead.example"], &message("d", "DEAD"));
    assert!(reply.starts_with("250"), "{reply}");
    let reply = client.transaction(
        "s@example.com",
        &["grey@example.com"],
        &message("g", "GREY"),
    );
    assert!(reply.starts_with("450 4.7.1"), "{reply}");
    client.send("RSET");
    let reply = client.transaction(
        "s@example.com",
        &["ok@example.com"],
        &message("how to retire early", "RETIRE"),
    );
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    client.send("QUIT");
    let mut outsider = Client::connect(gateway.port, "127.0.0.2").expect("connect");
    let reply = outsider.send_message("a@sender.example", &["z@other.org"], &message("r", "R"));
    assert!(reply.starts_with("554 5.7.1"), "{reply}");
    outsider.send("QUIT");

    // Three messages and the bounce's DSN delivered, one bounced, one deferred.
    let hour = |json: &Value, key: &str| json["periods"]["hour"][key].as_u64().unwrap_or(0);
    wait_for("the counts of the traffic", || {
        let json = stats_json(&gateway);
        (hour(&json, "delivered") >= 4
            && hour(&json, "bounced") >= 1
            && hour(&json, "deferred") >= 1)
            .then_some(())
    });
    // No more deferrals from here on.
    let (code, _, err) = gateway.admin(&["queue", "delete", "ALL"]);
    assert_eq!(code, 0, "{err}");
    let json = caught_up(&gateway);
    let total = &json["periods"]["total"];
    for period in ["hour", "day", "week", "month", "year", "total"] {
        let p = &json["periods"][period];
        assert_eq!(p["received"], 6, "{period}: {json}\n{}", gateway.log());
        assert_eq!(p["delivered"], 4, "{period}: {json}");
        assert_eq!(p["bounced"], 1, "{period}: {json}");
        assert_eq!(p["rejected"]["total"], 3, "{period}: {json}");
        assert_eq!(p["rejected"]["relay"], 1, "{period}: {json}");
        assert_eq!(p["rejected"]["greylist"], 1, "{period}: {json}");
        assert_eq!(p["rejected"]["content"], 1, "{period}: {json}");
        assert_eq!(p["greylisted"], 1, "{period}: {json}");
        assert_eq!(p["deferred"], total["deferred"], "{period}: {json}");
    }
    let deferred = total["deferred"].as_u64().unwrap();
    assert!(deferred >= 1);

    let text = metrics(stats_port);
    assert_eq!(metric(&text, "mailgate_received_total"), 6);
    assert_eq!(metric(&text, "mailgate_delivered_total"), 4);
    assert_eq!(metric(&text, "mailgate_bounced_total"), 1);
    assert_eq!(metric(&text, "mailgate_deferred_total"), deferred);
    assert_eq!(
        metric(&text, "mailgate_rejected_total{reason=\"relay\"}"),
        1
    );
    assert_eq!(
        metric(&text, "mailgate_rejected_total{reason=\"greylist\"}"),
        1
    );

    let (code, table, err) = gateway.admin(&["stats"]);
    assert_eq!(code, 0, "{err}");
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("received "))
        .expect("received row")
        .split_whitespace()
        .collect();
    assert_eq!(row, ["received", "6", "6", "6", "6", "6", "6"], "{table}");

    let graphs = tempfile::tempdir().unwrap();
    let (code, _, err) = gateway.admin(&["stats", "--graphs", graphs.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for span in ["day", "week", "month", "year"] {
        let traffic =
            fs::read_to_string(graphs.path().join(format!("traffic-{span}.svg"))).unwrap();
        assert!(traffic.contains(">received 6 (max "), "{span}");
        assert!(traffic.contains(">delivered 4 (max "), "{span}");
        let trouble =
            fs::read_to_string(graphs.path().join(format!("trouble-{span}.svg"))).unwrap();
        assert!(trouble.contains(">rejected 2 (max "), "{span}");
        assert!(trouble.contains(">greylisted 1 (max "), "{span}");
        assert!(trouble.contains(">bounced 1 (max "), "{span}");
        assert!(
            trouble.contains(&format!(">deferred {deferred} (max ")),
            "{span}"
        );
    }

    // pflogsumm reads exactly the part of the log that was counted.
    let log = fs::read(gateway.path("maillog")).unwrap();
    let counted = json["log_offset"].as_u64().unwrap() as usize;
    let prefix = gateway.path("maillog.counted");
    fs::write(&prefix, &log[..counted]).unwrap();
    let output = Command::new("pflogsumm")
        .arg("--syslog-name=mailgate")
        .arg(&prefix)
        .output()
        .expect("pflogsumm (Debian package pflogsumm) must be installed");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{report}");
    assert_eq!(pflogsumm_total(&report, "received"), 6, "{report}");
    assert_eq!(pflogsumm_total(&report, "delivered"), 4, "{report}");
    assert_eq!(pflogsumm_total(&report, "bounced"), 1, "{report}");
    assert_eq!(pflogsumm_total(&report, "rejected"), 3, "{report}");
    assert_eq!(deferrals(&report), deferred, "{report}");

    // The stats service stayed inside its sandbox the whole time.
    assert!(
        !gateway.log().contains("killed by signal"),
        "{}",
        gateway.log()
    );

    // A restart resumes where the counting stopped: nothing twice.
    gateway.stop();
    let mut gateway = gateway.launch();
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "s@example.com",
        &["ok@example.com"],
        &message("again", "AGAIN"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    client.send("QUIT");
    backend.wait_for_message("AGAIN");
    let json = wait_for(
        "the restarted stats service to count the new message",
        || {
            let json = caught_up(&gateway);
            (json["periods"]["total"]["delivered"] == 5).then_some(json)
        },
    );
    assert_eq!(json["periods"]["total"]["received"], 7, "{json}");
    gateway.stop();
}
