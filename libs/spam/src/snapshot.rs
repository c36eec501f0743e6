//! Learning while the scanner runs.
//!
//! The scanner opens its Bayes store before its sandbox and keeps it open
//! (redb locks it), and the sandbox lets it write no files. So the scanner
//! works on a snapshot: at start-up, under the lock, it first folds the
//! auto-learn journals into the store (see journal.rs), then copies the store
//! to `scanner/bayes.redb` in the same directory and opens the copy.
//! `mailgate learn` writes the real store under the lock and then reloads the
//! gateway, and the new scanner takes a fresh snapshot.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::SpamError;

const STORE: &str = "bayes.redb";
const LOCK: &str = ".learn.lock";
const SNAPSHOT_DIR: &str = "scanner";

/// Held while a store is learned into or copied, by a learner or by a scanner
/// taking its snapshot. Released on drop.
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    pub fn exclusive(dir: &Path) -> Result<StoreLock, SpamError> {
        let file = open_lock(dir)?;
        file.lock()
            .map_err(|source| io_error(&dir.join(LOCK), source))?;
        Ok(StoreLock { _file: file })
    }
}

fn open_lock(dir: &Path) -> Result<File, SpamError> {
    fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
    let path = dir.join(LOCK);
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| io_error(&path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> SpamError {
    SpamError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Folds the auto-learn journals into the store in `dir`, copies the store
/// (when there is one) to the scanner's snapshot directory and returns that
/// directory, for the scanner to open. The copy is renamed into place, so a
/// scanner still running on the previous snapshot keeps its file.
pub fn scanner_snapshot(dir: &Path) -> Result<PathBuf, SpamError> {
    let _lock = StoreLock::exclusive(dir)?;
    crate::journal::sync(dir)?;
    let snapshot_dir = dir.join(SNAPSHOT_DIR);
    fs::create_dir_all(&snapshot_dir).map_err(|source| io_error(&snapshot_dir, source))?;
    let store = dir.join(STORE);
    if store.exists() {
        let temp = snapshot_dir.join(format!(".{STORE}.{}", std::process::id()));
        fs::copy(&store, &temp).map_err(|source| io_error(&store, source))?;
        fs::rename(&temp, snapshot_dir.join(STORE))
            .map_err(|source| io_error(&snapshot_dir, source))?;
    }
    Ok(snapshot_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_copies_the_store_and_waits_for_a_learner() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            scanner_snapshot(dir.path()).unwrap(),
            dir.path().join("scanner")
        );
        assert!(
            !dir.path().join("scanner/bayes.redb").exists(),
            "nothing to copy yet"
        );
        fs::write(dir.path().join(STORE), b"learned").unwrap();
        let snapshot = scanner_snapshot(dir.path()).unwrap();
        assert_eq!(fs::read(snapshot.join(STORE)).unwrap(), b"learned");

        // A learner holds the store: the snapshot waits for it.
        let learner = StoreLock::exclusive(dir.path()).unwrap();
        let path = dir.path().to_path_buf();
        let waiting = std::thread::spawn(move || scanner_snapshot(&path).map(|_| ()));
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!waiting.is_finished());
        fs::write(dir.path().join(STORE), b"learned more").unwrap();
        drop(learner);
        waiting.join().unwrap().unwrap();
        assert_eq!(fs::read(snapshot.join(STORE)).unwrap(), b"learned more");
    }
}
