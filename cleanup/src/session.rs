//! One transaction from smtpd: Begin (reserve a queue ID), Commit (write
//! the queue file, make it durable, answer).

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use mailgate_ipc::envelope::{DeliveryState, Envelope, SmtpReply};
use mailgate_ipc::protocol::cleanup::{Reply, Request};
use mailgate_ipc::protocol::qmgr;
use mailgate_ipc::queue_file::{QueueRecord, write_record};
use mailgate_ipc::spool::{INCOMING, PendingFile, service_socket};
use mailgate_ipc::{Channel, IpcError};
use mailgate_log::{info, warning};

use crate::{Shared, headers};

fn write_error() -> SmtpReply {
    SmtpReply {
        code: 451,
        status: "4.3.0".into(),
        text: "Error: queue file write error".into(),
    }
}

pub async fn run(mut channel: Channel, shared: Arc<Shared>) {
    match channel.recv::<Request>().await {
        Ok((Request::Begin, _)) => {}
        Ok((other, _)) => return warning!("protocol error: expected Begin, got {other:?}"),
        Err(IpcError::Closed) => return,
        Err(e) => return warning!("{e}"),
    }
    let queue_id = shared
        .ids
        .lock()
        .map(|mut ids| ids.next_id())
        .unwrap_or_else(|poisoned| poisoned.into_inner().next_id());
    let id = queue_id.clone();
    let pending =
        match tokio::task::spawn_blocking(move || PendingFile::create(INCOMING, &id)).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(e)) => {
                warning!("{queue_id}: cannot create queue file: {e}");
                let _ = channel.send(&Reply::Deferred(write_error()), &[]).await;
                return;
            }
            Err(e) => return warning!("{queue_id}: {e}"),
        };
    let started = Reply::Started {
        queue_id: queue_id.clone(),
    };
    if channel.send(&started, &[]).await.is_err() {
        return;
    }
    // Dropping `pending` anywhere below, without commit, removes the file.
    let (envelope, content) = match channel.recv::<Request>().await {
        Ok((Request::Commit { envelope }, fds)) if fds.len() == 1 => {
            (envelope, fds.into_iter().next().expect("one descriptor"))
        }
        Ok((other, fds)) => {
            return warning!(
                "{queue_id}: protocol error: expected Commit with one descriptor, got {other:?} with {}",
                fds.len()
            );
        }
        // The client went away or reset the transaction.
        Err(IpcError::Closed) => return,
        Err(e) => return warning!("{queue_id}: {e}"),
    };
    let id = queue_id.clone();
    let written = tokio::task::spawn_blocking(move || {
        write_queue_file(pending, &shared, *envelope, content, &id)
    })
    .await;
    let reply = match written {
        Ok(Ok(message_id)) => {
            info!("{queue_id}: message-id={message_id}");
            Reply::Queued {
                queue_id: queue_id.clone(),
            }
        }
        Ok(Err(e)) => {
            warning!("{queue_id}: queue file write error: {e}");
            Reply::Deferred(write_error())
        }
        Err(e) => {
            warning!("{queue_id}: {e}");
            Reply::Deferred(write_error())
        }
    };
    let queued = matches!(reply, Reply::Queued { .. });
    if channel.send(&reply, &[]).await.is_err() && queued {
        // The file is durable; the client will not hear 250 and may send
        // again. SMTP allows the duplicate, and losing mail is worse.
        warning!("{queue_id}: smtpd went away after the message was queued");
    }
    if queued {
        wake_qmgr().await;
    }
}

/// Writes record + added headers + content, then commits. Returns the
/// Message-ID (the client's, or the one added).
fn write_queue_file(
    mut pending: PendingFile,
    shared: &Shared,
    envelope: Envelope,
    content: OwnedFd,
    queue_id: &str,
) -> io::Result<String> {
    let mut content = File::from(content);
    content.rewind()?;
    let mut original = Vec::new();
    content.read_to_end(&mut original)?;
    let facts = headers::scan(&original);
    let now = (envelope.arrival / 1_000_000) as i64;
    let settings = &shared.settings;
    let mut added = headers::received(settings, &envelope, queue_id, now);
    let message_id = match facts.message_id {
        Some(id) => id,
        None => {
            let id = headers::message_id(settings, queue_id, now);
            added.push_str(&format!("Message-ID: {id}\r\n"));
            id
        }
    };
    if !facts.has_date {
        added.push_str(&format!("Date: {}\r\n", headers::rfc5322_date(now)));
    }
    let record = QueueRecord {
        queue_id: queue_id.to_string(),
        envelope,
        state: DeliveryState::default(),
        message_id: Some(message_id.clone()),
        content_length: (added.len() + original.len()) as u64,
    };
    let mut out = BufWriter::new(pending.file());
    write_record(&mut out, &record).map_err(io::Error::other)?;
    out.write_all(added.as_bytes())?;
    out.write_all(&original)?;
    out.flush()?;
    drop(out);
    pending.commit()?;
    Ok(message_id)
}

async fn wake_qmgr() {
    let result = async {
        let mut qmgr = Channel::connect(&service_socket("qmgr")).await?;
        qmgr.send(&qmgr::Request::Wake, &[]).await
    }
    .await;
    if let Err(e) = result {
        // qmgr also scans incoming/ on its own timer; the mail is safe.
        warning!("cannot wake qmgr: {e}");
    }
}
