//! A compromised worker against the other services: for each Unix-socket
//! service, a process with the uid of a worker that may not call it (or of
//! a stranger) is refused before it is heard, and one with the uid that may
//! call it is refused anything but well-formed requests: queue IDs by their
//! grammar, sealed content of the announced size within the size limit, no
//! descriptors but the announced ones. The peer is tests/src/bin/
//! hostile_peer.rs; `--fs-root` lets it past the socket's file mode, so the
//! refusal shown is the service's own check of SO_PEERCRED.
//!
//! These tests need root (the gateway's users and the peer's uid changes);
//! ./run-tests runs them as root.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use mailgate_tests::{Backend, Client, Gateway, bin_dir, free_port, is_root, message, wait_for};

fn user(name: &str) -> (u32, u32) {
    let user = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user {name} (./run-tests creates it)"));
    (user.uid.as_raw(), user.gid.as_raw())
}

/// The identities the workers run as, as the profiles make them.
struct Users {
    mail_owner: String,
    /// smtpd_owner's uid in mail_owner's group.
    smtpd: String,
    relay: String,
    nobody: String,
}

fn users() -> Users {
    assert!(
        is_root(),
        "the hostile-peer tests change uids and need root (./run-tests runs as root)"
    );
    let (mail_uid, mail_gid) = user("mailgate");
    let (smtpd_uid, _) = user("mailgate-smtpd");
    let (relay_uid, relay_gid) = user("mailgate-relay");
    let (nobody_uid, nobody_gid) = user("nobody");
    Users {
        mail_owner: format!("{mail_uid}:{mail_gid}"),
        smtpd: format!("{smtpd_uid}:{mail_gid}"),
        relay: format!("{relay_uid}:{relay_gid}"),
        nobody: format!("{nobody_uid}:{nobody_gid}"),
    }
}

/// Runs the hostile peer and returns its one line of outcome.
fn peer(identity: &str, fs_root: bool, socket: &Path, scenario: &[&str]) -> String {
    let mut command = Command::new(bin_dir().join("hostile-peer"));
    command.args(["--as", identity]);
    if fs_root {
        command.arg("--fs-root");
    }
    let output = command
        .arg(socket)
        .args(scenario)
        .output()
        .expect("hostile-peer (cargo build --workspace --bins)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "hostile-peer failed: {stderr}");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn open_fds(pid: nix::unistd::Pid) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn pid_of(gateway: &Gateway, program: &str) -> nix::unistd::Pid {
    wait_for(&format!("{program} to run"), || {
        gateway.worker_pids(program).first().copied()
    })
}

#[test]
fn qmgr_acts_only_for_mail_owner_and_root_and_only_on_queue_ids() {
    let users = users();
    let backend = Backend::start();
    // Mail for example.com goes to a port nobody listens on: it stays queued.
    let dead = free_port();
    let gateway = Gateway::start(
        &backend,
        &format!("transport_maps = inline:{{ example.com=smtp:[127.0.0.1]:{dead} }}"),
    );
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["bob@example.com"],
        &message("stays queued", "QUEUED-MARKER"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    gateway.wait_for_log("status=deferred");
    let count = |q: &str| fs::read_dir(gateway.spool(q)).map_or(0, |d| d.count());
    let queued = || {
        ["incoming", "active", "deferred"]
            .iter()
            .map(|q| count(q))
            .sum::<usize>()
    };
    // qmgr rewrites the file in active/ (through a temporary file there)
    // before it moves it: settled once it is in deferred/ alone.
    wait_for("the message in deferred/", || {
        (count("deferred") == 1 && queued() == 1).then_some(())
    });
    let qmgr = gateway.spool("public/qmgr");

    // smtpd's uid (in mail_owner's group) cannot open qmgr's socket (0600),
    // and past the socket's mode qmgr refuses it by uid.
    let out = peer(&users.smtpd, false, &qmgr, &["act-delete-all"]);
    assert!(out.starts_with("connect failed"), "{out}");
    let out = peer(&users.smtpd, true, &qmgr, &["act-delete-all"]);
    assert!(out.starts_with("closed"), "{out}");
    gateway.wait_for_log("refusing a connection to service qmgr");
    // Nor does relay's, or a stranger's, even past the socket's mode.
    for identity in [&users.relay, &users.nobody] {
        let out = peer(identity, true, &qmgr, &["act-delete-all"]);
        assert!(out.starts_with("closed"), "{out}");
    }
    assert_eq!(queued(), 1, "the queue is intact");

    // mail_owner may act, but only on queue IDs: not on a path.
    let victim = gateway.spool("public/cleanup");
    assert!(victim.exists());
    let out = peer(
        &users.mail_owner,
        false,
        &qmgr,
        &["act-delete", "../public/cleanup"],
    );
    assert!(out.starts_with("closed"), "{out}");
    assert!(victim.exists(), "public/cleanup was removed through qmgr");
    let line = gateway.wait_for_log("refusing a request from uid");
    assert!(line.contains("queue ID"), "{line}");

    // Descriptors no frame announced are closed at the first frame, not
    // queued for the life of the connection.
    let qmgr_pid = pid_of(&gateway, "qmgr");
    let before = open_fds(qmgr_pid);
    let mut holder = Command::new(bin_dir().join("hostile-peer"))
        .args(["--as", &users.mail_owner])
        .arg(&qmgr)
        .args(["wake-with-fds", "200"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hostile-peer");
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert!(line.starts_with("sent "), "{line}");
    let during = open_fds(qmgr_pid);
    holder
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"")
        .expect("close");
    let _ = holder.wait();
    assert!(
        during < before + 10,
        "qmgr held {before} descriptors, then {during} with the connection open"
    );
    // Mail still flows.
    assert_eq!(queued(), 1);
}

#[test]
fn cleanup_takes_only_sealed_content_of_the_announced_size() {
    let users = users();
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "message_size_limit = 1000000");
    let cleanup = gateway.spool("public/cleanup");
    let cleanup_pid = pid_of(&gateway, "cleanup");

    // smtpd's uid may hand over a message, sealed, as smtpd does.
    let out = peer(&users.smtpd, false, &cleanup, &["commit", "sealed"]);
    assert!(out.starts_with("Queued"), "{out}");
    backend.wait_for_message("HOSTILE-PEER-MARKER");

    // Content the sender could still change after the checks: refused.
    let out = peer(&users.smtpd, false, &cleanup, &["commit", "unsealed"]);
    assert!(
        out.starts_with("Rejected") && out.contains("5.5.0"),
        "{out}"
    );
    let line = gateway.wait_for_log("not sealed");
    assert!(line.contains("refusing a request from uid"), "{line}");
    // A size other than the one announced: refused.
    let out = peer(&users.smtpd, false, &cleanup, &["commit", "mismatch"]);
    assert!(out.starts_with("Rejected"), "{out}");
    // 64 GiB of nothing, sealed: refused by size, before any allocation.
    let out = peer(&users.smtpd, false, &cleanup, &["commit", "sparse"]);
    assert!(out.contains("552") && out.contains("5.3.4"), "{out}");
    // Descriptors Begin does not announce: the connection is refused.
    let out = peer(&users.mail_owner, false, &cleanup, &["begin-with-fds"]);
    assert!(out.starts_with("closed"), "{out}");
    // relay's uid and a stranger's may not call cleanup at all.
    for identity in [&users.relay, &users.nobody] {
        let out = peer(identity, true, &cleanup, &["commit", "sealed"]);
        assert!(out.starts_with("closed"), "{out}");
    }
    gateway.wait_for_log("refusing a connection to service cleanup");

    // cleanup survived all of it and still takes mail.
    assert_eq!(pid_of(&gateway, "cleanup"), cleanup_pid);
    let mut client = Client::connect(gateway.port, "127.0.0.1").expect("connect");
    let reply = client.send_message(
        "a@sender.example",
        &["bob@example.com"],
        &message("after", "AFTER-HOSTILE"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    backend.wait_for_message("AFTER-HOSTILE");
    assert!(!gateway.log().contains("killed by signal"));
}

#[test]
fn relay_delivers_only_for_qmgr() {
    let users = users();
    let backend = Backend::start();
    let gateway = Gateway::start(&backend, "");
    let relay = gateway.spool("private/smtp");
    let nexthop = format!("[127.0.0.1]:{}", backend.port);

    // smtpd's uid cannot even reach private/ ...
    let out = peer(&users.smtpd, false, &relay, &["deliver", &nexthop]);
    assert!(out.starts_with("connect failed"), "{out}");
    // ... and past the directory's mode relay refuses it by uid.
    let out = peer(&users.smtpd, true, &relay, &["deliver", &nexthop]);
    assert!(out.starts_with("closed"), "{out}");
    gateway.wait_for_log("refusing a connection to service smtp");
    // qmgr's uid is heard, but not for a range the file does not hold.
    let beyond = format!("{nexthop},beyond");
    let out = peer(&users.mail_owner, false, &relay, &["deliver", &beyond]);
    assert!(out.starts_with("closed"), "{out}");
    gateway.wait_for_log("content range ends at");
    assert!(
        backend.messages().is_empty(),
        "relay delivered for a peer it must refuse"
    );
    // The same request from qmgr's uid, well formed, is delivered.
    let out = peer(&users.mail_owner, false, &relay, &["deliver", &nexthop]);
    assert!(out.starts_with("Sent"), "{out}");
    backend.wait_for_message("HOSTILE-PEER-MARKER");

    // Address probes (the verify service's, as mail_owner): smtpd's uid is
    // refused, a recipient that would smuggle a command ends the
    // connection, a well-formed probe is answered and sends no message.
    let out = peer(&users.smtpd, true, &relay, &["probe", &nexthop]);
    assert!(out.starts_with("closed"), "{out}");
    let inject = format!("{nexthop},inject");
    let out = peer(&users.mail_owner, false, &relay, &["probe", &inject]);
    assert!(out.starts_with("closed"), "{out}");
    gateway.wait_for_log("invalid request: recipient with a control character");
    let out = peer(&users.mail_owner, false, &relay, &["probe", &nexthop]);
    assert!(out.starts_with("Sent 2."), "{out}");
    gateway.wait_for_log("probe: to=<b@example.com>, ");
    assert_eq!(backend.messages().len(), 1, "a probe sent a message");
}

#[test]
fn the_verify_service_answers_smtpd_and_no_other_worker() {
    let users = users();
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    let data = gateway.path("data");
    fs::create_dir(&data).expect("data directory");
    fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    gateway.add_main_cf(&format!(
        "data_directory = {}
\
         smtpd_recipient_restrictions = reject_unauth_destination, reject_unverified_recipient",
        data.display()
    ));
    gateway.add_master_cf("verify unix - - y - 1 verify");
    let gateway = gateway.launch();
    let verify = gateway.spool("private/verify");
    wait_for("the verify socket", || verify.exists().then_some(()));

    // smtpd asks, as reject_unverified_recipient does.
    let out = peer(&users.smtpd, false, &verify, &["verify", "bob@example.com"]);
    assert!(
        out.starts_with("InProgress ") || out.starts_with("Deliverable "),
        "{out}"
    );
    // relay's uid and a stranger's are refused, even past the socket's mode.
    for identity in [&users.relay, &users.nobody] {
        let out = peer(identity, true, &verify, &["verify", "bob@example.com"]);
        assert!(out.starts_with("closed"), "{out}");
    }
    gateway.wait_for_log("refusing a connection to service verify");
    // An address with a line end in it is refused, and nothing probes it.
    let out = peer(&users.smtpd, false, &verify, &["verify", "a@b\r\nRSET"]);
    assert!(out.starts_with("closed"), "{out}");
    gateway.wait_for_log("invalid request: address with a control character");
    assert!(!gateway.log().contains("killed by signal"));
}

#[test]
fn the_greylist_service_answers_smtpd_and_no_other_worker() {
    let users = users();
    let backend = Backend::start();
    let gateway = Gateway::configure(&backend, "");
    let data = gateway.path("data");
    fs::create_dir(&data).expect("data directory");
    fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    gateway.add_main_cf(&format!("data_directory = {}", data.display()));
    gateway.add_master_cf("greylist unix - - y - - greylist");
    let gateway = gateway.launch();
    let greylist = gateway.spool("private/greylist");
    wait_for("the greylist socket", || greylist.exists().then_some(()));

    // smtpd asks, as check_policy_service unix:private/greylist does.
    let out = wait_for("the greylist service to answer", || {
        Some(peer(&users.smtpd, false, &greylist, &["policy"])).filter(|o| o.starts_with("action="))
    });
    assert!(out.starts_with("action=DEFER"), "{out}");
    // relay's uid and a stranger's are refused, even past the socket's mode.
    for identity in [&users.relay, &users.nobody] {
        let out = peer(identity, true, &greylist, &["policy"]);
        assert_eq!(out, "closed");
    }
    gateway.wait_for_log("refusing a connection to service greylist");
}

#[test]
fn the_scanner_scans_only_for_cleanup_and_only_sealed_content() {
    let users = users();
    let backend = Backend::start();
    let home = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let extra = format!(
        "content_scanner = scanner\nscanner_directory = {}\nspam_bayes_directory =\n\
         spam_stock_rules_directory =\n",
        home.path().display()
    );
    let gateway = Gateway::configure(&backend, &extra).with_scanner().launch();
    let scanner = gateway.spool("public/scanner");
    wait_for("the scanner's socket", || scanner.exists().then_some(()));

    // smtpd's uid cannot open the scanner's socket, and past its mode the
    // scanner refuses it by uid.
    let out = peer(&users.smtpd, false, &scanner, &["scan", "sealed"]);
    assert!(out.starts_with("connect failed"), "{out}");
    let out = peer(&users.smtpd, true, &scanner, &["scan", "sealed"]);
    assert!(out.starts_with("closed"), "{out}");
    gateway.wait_for_log("refusing a connection to service scanner");
    // cleanup's uid with content that could change after the scan.
    let out = peer(&users.mail_owner, false, &scanner, &["scan", "unsealed"]);
    assert!(out.starts_with("Failed"), "{out}");
    gateway.wait_for_log("not sealed");
    // Sealed content from cleanup's uid is scanned.
    let out = peer(&users.mail_owner, false, &scanner, &["scan", "sealed"]);
    assert!(out.starts_with("Verdict"), "{out}");
}
