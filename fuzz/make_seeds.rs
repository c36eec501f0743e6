//! Writes the seeds of the targets whose inputs are binary records
//! (queue files, IPC frames) from the real encoders, so the seeds match
//! the formats as they are: `fuzz/run build && target/*/release/make_seeds`.
//! Not a fuzz target.

use std::path::Path;

// The build instruments every binary for libFuzzer; linking its runtime
// provides the coverage hooks (its own main is not used).
use libfuzzer_sys as _;

use mailgate_ipc::envelope::{ClientInfo, DeliveryState, Envelope, Recipient};
use mailgate_ipc::protocol::{cleanup, delivery, qmgr, scanner};
use mailgate_ipc::queue_file::{QueueRecord, write_record};
use serde::Serialize;

fn envelope() -> Envelope {
    Envelope {
        sender: "alice@example.org".into(),
        recipients: vec![
            Recipient::new(
                "bob@example.com".into(),
                Some("rfc822;bob@example.com".into()),
            ),
            Recipient::new("carol@example.com".into(), None),
        ],
        client: ClientInfo {
            name: "mail.example.org".into(),
            addr: "192.0.2.25".into(),
            port: 40000,
            helo: "mail.example.org".into(),
            protocol: "ESMTP".into(),
        },
        body_type: None,
        smtputf8: false,
        dsn_ret: Some("HDRS".into()),
        dsn_envid: None,
        arrival: Default::default(),
    }
}

/// A frame as mailgate_ipc::channel writes it: length, descriptor count, postcard.
fn frame<M: Serialize>(pick: u8, message: &M, nfds: u8) -> Vec<u8> {
    let body = postcard::to_stdvec(message).expect("encode");
    let mut out = vec![pick];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.push(nfds);
    out.extend_from_slice(&body);
    out
}

fn main() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let qf = seeds.join("queue_file");
    std::fs::create_dir_all(&qf).expect("mkdir");
    let content = b"Subject: hi\r\n\r\nhello\r\n";
    let record = QueueRecord {
        queue_id: "4XyZ1abcDEF".into(),
        envelope: envelope(),
        state: DeliveryState::default(),
        message_id: Some("<1@example.org>".into()),
        content_length: content.len() as u64,
        filter: None,
    };
    let mut file = Vec::new();
    write_record(&mut file, &record).expect("record");
    file.extend_from_slice(content);
    std::fs::write(qf.join("two-recipients"), &file).expect("write");

    let ipc = seeds.join("ipc_frame");
    std::fs::create_dir_all(&ipc).expect("mkdir");
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(ipc.join(name), bytes).expect("write");
    write("cleanup-begin", frame(0, &cleanup::Request::Begin, 0));
    write(
        "cleanup-commit",
        frame(
            0,
            &cleanup::Request::Commit {
                envelope: Box::new(envelope()),
                actions: Box::default(),
                size: 0,
            },
            0,
        ),
    );
    write(
        "cleanup-queued",
        frame(
            1,
            &cleanup::Reply::Queued {
                queue_id: "4XyZ1".into(),
            },
            0,
        ),
    );
    write(
        "scanner-request",
        frame(
            2,
            &scanner::Request {
                queue_id: "4XyZ1".into(),
                sender: "a@example.org".into(),
                recipients: vec!["b@example.com".into()],
                client: envelope().client,
                received: "Received: from x (x [192.0.2.1])\r\n\tby gw (mailgate) with ESMTP id 4XyZ1; Mon, 1 Jan 2024 00:00:00 +0000\r\n".into(),
                size: 0,
                sender_auth: Default::default(),
            },
            0,
        ),
    );
    write(
        "scanner-failed",
        frame(3, &scanner::Reply::Failed { reason: "x".into() }, 0),
    );
    write(
        "qmgr-act",
        frame(
            4,
            &qmgr::Request::Act {
                action: qmgr::Action::Hold,
                target: qmgr::Target::Ids(vec!["4XyZ1".into()]),
            },
            0,
        ),
    );
    write(
        "delivery-reply",
        frame(
            5,
            &delivery::Reply {
                results: vec![delivery::RecipientResult {
                    index: 0,
                    outcome: delivery::Outcome::Sent,
                    dsn: "2.0.0".into(),
                    reason: "250 ok".into(),
                }],
            },
            0,
        ),
    );
}
