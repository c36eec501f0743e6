//! Group commit of directory fsyncs. A queue file is durable once its
//! data is synced, it is renamed into place, and its directory is synced
//! after the rename. When many sessions commit at once, one fsync of the
//! directory that starts after all their renames covers every one of them:
//! a commit joins the batch that has not started yet and waits for that
//! batch's fsync (leading it when no fsync is running). No commit returns
//! before an fsync that started after its own rename has succeeded, so
//! "250 only after it is on disk" holds as with one fsync per message; a
//! failed fsync fails exactly the commits of its batch.

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

/// The directory fsyncs of one directory.
pub struct DirSync {
    dir: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
}

impl DirSync {
    pub fn new(dir: &Path) -> DirSync {
        DirSync {
            dir: dir.to_path_buf(),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
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
        self.sync_with(|dir| File::open(dir)?.sync_all())
    }

    fn sync_with(&self, fsync: impl Fn(&Path) -> io::Result<()>) -> io::Result<()> {
        let mut state = self.lock();
        let mine = state
            .collecting
            .get_or_insert_with(|| Arc::new(Batch::default()))
            .clone();
        loop {
            if let Some(result) = mine.result.get() {
                return result
                    .clone()
                    .map_err(|(kind, message)| io::Error::new(kind, message));
            }
            if state.syncing {
                state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // No fsync runs and ours has no result: ours is still the
            // collecting batch (a batch is only taken by a leader, which
            // sets its result before it clears `syncing`). Lead it.
            let batch = state
                .collecting
                .take()
                .expect("an unsynced batch with no fsync running is the collecting one");
            state.syncing = true;
            drop(state);
            let result = fsync(&self.dir).map_err(|e| (e.kind(), e.to_string()));
            let _ = batch.result.set(result);
            state = self.lock();
            state.syncing = false;
            self.changed.notify_all();
        }
    }
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
        let sync = Arc::new(DirSync::new(Path::new(".")));
        let renamed = Arc::new(AtomicUsize::new(0));
        let durable = Arc::new(AtomicUsize::new(0));
        let fsyncs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (sync, renamed, durable, fsyncs) = (
                    sync.clone(),
                    renamed.clone(),
                    durable.clone(),
                    fsyncs.clone(),
                );
                thread::spawn(move || {
                    let mine = renamed.fetch_add(1, Ordering::SeqCst) + 1;
                    sync.sync_with(|_| {
                        fsyncs.fetch_add(1, Ordering::SeqCst);
                        let seen = renamed.load(Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(5));
                        durable.fetch_max(seen, Ordering::SeqCst);
                        Ok(())
                    })
                    .unwrap();
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
        let sync = DirSync::new(Path::new("."));
        let calls = AtomicUsize::new(0);
        let fsync = |_: &Path| {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(io::Error::other("disk on fire"))
            } else {
                Ok(())
            }
        };
        let err = sync.sync_with(fsync).unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
        sync.sync_with(fsync).unwrap();
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
}
