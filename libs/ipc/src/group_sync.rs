//! Group commit of directory fsyncs. A queue file is durable once its
//! data is synced, it is renamed into place, and its directory is synced
//! after the rename. When many sessions commit at once, one fsync of the
//! directory that starts after all their renames covers every one of them:
//! a commit joins the batch that has not started yet and waits for that
//! batch's fsync (leading it when no fsync is running). No commit returns
//! before an fsync that started after its own rename has succeeded, so
//! "250 only after it is on disk" holds as with one fsync per message; a
//! failed fsync fails exactly the commits of its batch.
//!
//! Two ways to wait: [`DirSync::sync`] blocks its thread (for code on a
//! blocking thread already); [`DirSync::sync_async`] holds no thread while
//! it waits, and only a batch's leader runs its fsync on a blocking thread,
//! so twenty sessions waiting for one fsync cost one thread, not twenty.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, OnceLock};

/// One fsync and the commits it covers: its outcome, once known.
#[derive(Default)]
struct Batch {
    result: OnceLock<Result<(), (io::ErrorKind, String)>>,
}

#[derive(Default)]
struct State {
    /// The batch new commits join: its fsync has not started.
    collecting: Option<Arc<Batch>>,
    /// An fsync is running (its leader holds the batch it covers).
    syncing: bool,
}

/// How a directory is synced (a test's stand-in in the tests).
type Fsync = Arc<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;

/// The directory fsyncs of one directory.
pub struct DirSync {
    dir: PathBuf,
    state: Mutex<State>,
    /// Wakes blocking waiters when an fsync ends.
    changed: Condvar,
    /// Wakes async waiters when an fsync ends.
    ended: tokio::sync::Notify,
    fsync: Fsync,
}

impl DirSync {
    pub fn new(dir: &Path) -> DirSync {
        DirSync::with_fsync(dir, Arc::new(|dir: &Path| File::open(dir)?.sync_all()))
    }

    fn with_fsync(dir: &Path, fsync: Fsync) -> DirSync {
        DirSync {
            dir: dir.to_path_buf(),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            ended: tokio::sync::Notify::new(),
            fsync,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves State consistent (every
        // change is one assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once an fsync of the directory that started after this call
    /// began has succeeded. Blocking: call it off async runtimes' threads.
    pub fn sync(&self) -> io::Result<()> {
        let mine = self.join();
        let mut state = self.lock();
        loop {
            if let Some(result) = outcome(&mine) {
                return result;
            }
            if state.syncing {
                state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            let batch = take_lead(&mut state);
            drop(state);
            self.lead(&batch);
            state = self.lock();
        }
    }

    /// The batch a commit joins: the one whose fsync has not started.
    fn join(&self) -> Arc<Batch> {
        self.lock()
            .collecting
            .get_or_insert_with(|| Arc::new(Batch::default()))
            .clone()
    }

    /// [`sync`](Self::sync) for async code: returns once an fsync of the
    /// directory that started after this future was first polled has
    /// succeeded. No thread waits; a batch's leader hands its fsync to a
    /// blocking thread, which finishes the batch even if the leader's
    /// future is dropped meanwhile (so no batch is left unsynced with
    /// `syncing` set).
    pub async fn sync_async(self: Arc<Self>) -> io::Result<()> {
        let mine = self.join();
        loop {
            // Registered before the state is looked at, so the end of an
            // fsync that starts after the look is not missed.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some(result) = outcome(&mine) {
                    return result;
                }
                if !state.syncing {
                    let batch = take_lead(&mut state);
                    drop(state);
                    let this = self.clone();
                    drop(tokio::task::spawn_blocking(move || this.lead(&batch)));
                }
            }
            ended.await;
        }
    }

    /// Runs the fsync of `batch` (taken from `collecting`, with `syncing`
    /// set by the caller), records its result and wakes every waiter.
    fn lead(&self, batch: &Batch) {
        let result = (self.fsync)(&self.dir).map_err(|e| (e.kind(), e.to_string()));
        let _ = batch.result.set(result);
        self.lock().syncing = false;
        self.changed.notify_all();
        self.ended.notify_waiters();
    }
}

/// The result of a batch whose fsync has ended.
fn outcome(batch: &Batch) -> Option<io::Result<()>> {
    batch.result.get().map(|result| {
        result
            .clone()
            .map_err(|(kind, message)| io::Error::new(kind, message))
    })
}

/// Takes the collecting batch to lead its fsync. Called with no fsync
/// running and the caller's batch without a result: that batch is still
/// the collecting one (a batch is only taken by a leader, which sets its
/// result before it clears `syncing`).
fn take_lead(state: &mut State) -> Arc<Batch> {
    state.syncing = true;
    state
        .collecting
        .take()
        .expect("an unsynced batch with no fsync running is the collecting one")
}

/// The process's DirSync for `dir`, made on first use.
pub fn for_dir(dir: &Path) -> Arc<DirSync> {
    static ALL: LazyLock<Mutex<HashMap<PathBuf, Arc<DirSync>>>> = LazyLock::new(Default::default);
    let mut all = ALL.lock().unwrap_or_else(|p| p.into_inner());
    all.entry(dir.to_path_buf())
        .or_insert_with(|| Arc::new(DirSync::new(dir)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::Duration;

    /// Many concurrent commits share few fsyncs, and each returns only once
    /// an fsync that started after its "rename" has finished: `durable` is
    /// the number of renames the finished fsyncs had seen when they began.
    #[test]
    fn concurrent_commits_share_fsyncs_that_start_after_them() {
        let renamed = Arc::new(AtomicUsize::new(0));
        let durable = Arc::new(AtomicUsize::new(0));
        let fsyncs = Arc::new(AtomicUsize::new(0));
        let (r, d, f) = (renamed.clone(), durable.clone(), fsyncs.clone());
        let sync = Arc::new(DirSync::with_fsync(
            Path::new("."),
            Arc::new(move |_: &Path| {
                f.fetch_add(1, Ordering::SeqCst);
                let seen = r.load(Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
                d.fetch_max(seen, Ordering::SeqCst);
                Ok(())
            }),
        ));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (sync, renamed, durable) = (sync.clone(), renamed.clone(), durable.clone());
                thread::spawn(move || {
                    let mine = renamed.fetch_add(1, Ordering::SeqCst) + 1;
                    sync.sync().unwrap();
                    assert!(durable.load(Ordering::SeqCst) >= mine);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let fsyncs = fsyncs.load(Ordering::SeqCst);
        assert!((1..32).contains(&fsyncs), "{fsyncs} fsyncs for 32 commits");
    }

    /// A failed fsync fails its batch, and the next batch syncs again.
    #[test]
    fn a_failed_fsync_fails_its_batch_only() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let sync = DirSync::with_fsync(
            Path::new("."),
            Arc::new(move |_: &Path| {
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(io::Error::other("disk on fire"))
                } else {
                    Ok(())
                }
            }),
        );
        let err = sync.sync().unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        sync.sync().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_real_directory_syncs() {
        let dir = std::env::temp_dir();
        for_dir(&dir).sync().unwrap();
        assert!(Arc::ptr_eq(&for_dir(&dir), &for_dir(&dir)));
        assert!(
            DirSync::new(Path::new("/nonexistent-mailgate-dir"))
                .sync()
                .is_err()
        );
    }

    /// The async form: 32 waiting tasks share few fsyncs (each run by a
    /// batch's leader on a blocking thread), and each returns only once an
    /// fsync that began after it joined has finished.
    #[tokio::test(flavor = "current_thread")]
    async fn async_commits_share_fsyncs_that_start_after_them() {
        static RENAMED: AtomicUsize = AtomicUsize::new(0);
        static DURABLE: AtomicUsize = AtomicUsize::new(0);
        static FSYNCS: AtomicUsize = AtomicUsize::new(0);
        let sync = Arc::new(DirSync::with_fsync(
            Path::new("."),
            Arc::new(|_: &Path| {
                FSYNCS.fetch_add(1, Ordering::SeqCst);
                let seen = RENAMED.load(Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
                DURABLE.fetch_max(seen, Ordering::SeqCst);
                Ok(())
            }),
        ));
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let sync = sync.clone();
                tokio::spawn(async move {
                    // Spread the renames over a few fsyncs.
                    tokio::time::sleep(Duration::from_millis(i % 4 * 3)).await;
                    let mine = RENAMED.fetch_add(1, Ordering::SeqCst) + 1;
                    sync.sync_async().await.unwrap();
                    assert!(DURABLE.load(Ordering::SeqCst) >= mine);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let fsyncs = FSYNCS.load(Ordering::SeqCst);
        assert!((1..32).contains(&fsyncs), "{fsyncs} fsyncs for 32 commits");
    }

    /// A leader whose future is dropped while its fsync runs still ends
    /// the batch: the next waiter is not stuck behind it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_leader_still_ends_its_fsync() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let sync = Arc::new(DirSync::with_fsync(
            Path::new("."),
            Arc::new(|_: &Path| {
                thread::sleep(Duration::from_millis(20));
                if CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(io::Error::other("disk on fire"))
                } else {
                    Ok(())
                }
            }),
        ));
        let leader = tokio::spawn(sync.clone().sync_async());
        tokio::time::sleep(Duration::from_millis(5)).await;
        leader.abort();
        let next = tokio::time::timeout(Duration::from_secs(5), sync.clone().sync_async()).await;
        // The first fsync failed for the dropped leader's batch only.
        next.expect("not stuck").unwrap();
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    }
}
