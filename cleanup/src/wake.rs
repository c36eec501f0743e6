//! Telling qmgr that incoming/ has new mail, off the 250's path and
//! coalesced: a commit marks the queue dirty and returns; one task sends a
//! wake-up on a kept connection whenever the mark is set. The mark is set
//! after the queue file's rename, and qmgr scans incoming/ after it reads
//! a wake-up, so every file committed before a wake-up is sent is seen by
//! the scan that follows it. A lost wake-up only delays mail: qmgr also
//! scans incoming/ on its own timer.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use mailgate_ipc::Channel;
use mailgate_ipc::protocol::qmgr;
use mailgate_ipc::spool::service_socket;
use mailgate_log::warning;
use tokio::sync::Notify;

struct Waker {
    dirty: AtomicBool,
    notify: Notify,
    started: Once,
}

static WAKER: Waker = Waker {
    dirty: AtomicBool::new(false),
    notify: Notify::const_new(),
    started: Once::new(),
};

/// Marks incoming/ as changed; qmgr hears of it soon. Call from within the
/// runtime (the first call starts the task that wakes qmgr).
pub fn wake_qmgr() {
    WAKER.started.call_once(|| {
        tokio::spawn(run(&WAKER));
    });
    WAKER.dirty.store(true, Ordering::Release);
    WAKER.notify.notify_one();
}

async fn run(waker: &'static Waker) {
    let mut qmgr: Option<Channel> = None;
    loop {
        waker.notify.notified().await;
        while waker.dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = send(&mut qmgr).await {
                // qmgr also scans incoming/ on its own timer; the mail is
                // safe on disk.
                warning!("cannot wake qmgr: {e}");
            }
        }
    }
}

/// One wake-up on the kept connection, or on a new one when there is
/// none or qmgr closed it (it was restarted, say).
async fn send(qmgr: &mut Option<Channel>) -> Result<(), mailgate_ipc::IpcError> {
    if let Some(channel) = qmgr.as_mut()
        && channel.send(&qmgr::Request::Wake, &[]).await.is_ok()
    {
        return Ok(());
    }
    *qmgr = None;
    let mut channel = Channel::connect(&service_socket("qmgr")).await?;
    channel.send(&qmgr::Request::Wake, &[]).await?;
    *qmgr = Some(channel);
    Ok(())
}
