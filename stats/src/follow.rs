//! Following the log: read what was appended since the last look, count
//! each complete line, remember where we are in the statistics file so a
//! restart neither loses nor repeats lines.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailgate_log::warning;
use mailgate_stats::{LogPosition, Ring, SyslogClock, classify, unix_now};

/// The most read in one look; the rest waits for the next.
const CHUNK: usize = 1 << 20;
/// A "line" longer than this is not a log line; it is skipped.
const MAX_LINE: usize = 64 * 1024;

pub struct Follower {
    log: File,
    ring: Ring,
    syslog_name: String,
    clock: SyslogClock,
    position: LogPosition,
    /// The incomplete last line, not yet counted.
    partial: Vec<u8>,
}

impl Follower {
    /// Resumes where the statistics file says, when it speaks of this very
    /// file (same device and inode) and the file is not shorter; otherwise
    /// reads the log from its start, counting each line at its own time.
    pub fn new(log: File, ring: Ring, syslog_name: String) -> Follower {
        let (dev, ino) = log.metadata().map(|m| (m.dev(), m.ino())).unwrap_or((0, 0));
        let saved = ring.log_position();
        let position = if saved.dev == dev && saved.ino == ino {
            saved
        } else {
            LogPosition {
                dev,
                ino,
                offset: 0,
            }
        };
        Follower {
            log,
            ring,
            syslog_name,
            clock: SyslogClock::default(),
            position,
            partial: Vec::new(),
        }
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Counts the complete lines appended since the last call. Returns how
    /// many lines were read.
    pub fn poll(&mut self) -> std::io::Result<usize> {
        let size = self.log.metadata()?.len();
        let resume_at = self.position.offset + self.partial.len() as u64;
        if size < resume_at {
            // Truncated (logrotate copytruncate): start over.
            self.position.offset = 0;
            self.partial.clear();
        }
        let from = self.position.offset + self.partial.len() as u64;
        if size <= from {
            return Ok(0);
        }
        self.log.seek(SeekFrom::Start(from))?;
        let mut chunk = vec![0u8; ((size - from) as usize).min(CHUNK)];
        let read = self.log.read(&mut chunk)?;
        chunk.truncate(read);
        let now = unix_now();
        let mut lines = 0;
        let mut rest: &[u8] = &chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..end]);
            let line = std::mem::take(&mut self.partial);
            self.position.offset += line.len() as u64 + 1;
            rest = &rest[end + 1..];
            lines += 1;
            if line.len() > MAX_LINE {
                continue;
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(event) = classify(&text, &self.syslog_name, &self.clock) {
                self.ring.count(event, now);
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE {
            // Skip an endless line rather than hold it.
            self.position.offset += self.partial.len() as u64;
            self.partial.clear();
        }
        self.ring.set_log_position(self.position);
        if let Err(e) = self.ring.flush() {
            warning!("{e}");
        }
        Ok(lines)
    }
}

/// Polls the log for as long as the service runs.
pub async fn run(follower: Arc<Mutex<Follower>>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        interval.tick().await;
        loop {
            let result = match follower.lock() {
                Ok(mut f) => f.poll(),
                Err(_) => return,
            };
            match result {
                // A long backlog is read chunk by chunk without waiting.
                Ok(n) if n > 0 => {
                    failing = false;
                    tokio::task::yield_now().await;
                }
                Ok(_) => break,
                Err(e) => {
                    if !failing {
                        warning!("cannot read maillog_file: {e}");
                    }
                    failing = true;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailgate_stats::{Counter, Snapshot};
    use std::io::Write;

    fn stamp() -> String {
        let tm = mailgate_log::local_time(unix_now()).unwrap();
        format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            mailgate_log::MONTHS[tm.tm_mon as usize],
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    }

    #[test]
    fn lines_are_counted_once_across_restarts_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("maillog");
        let stats = dir.path().join("stats");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let received = format!(
            "{} h mailgate/smtpd[1]: 0A: client=unknown[127.0.0.1]\n",
            stamp()
        );
        log.write_all(received.as_bytes()).unwrap();
        // Half a line: not counted until it is complete.
        let (head, tail) = received.split_at(20);
        log.write_all(head.as_bytes()).unwrap();

        let mut follower = Follower::new(
            File::open(&log_path).unwrap(),
            Ring::open(&stats, unix_now()).unwrap(),
            "mailgate".into(),
        );
        assert_eq!(follower.poll().unwrap(), 1);
        assert_eq!(follower.ring().snapshot().totals.get(Counter::Received), 1);
        log.write_all(tail.as_bytes()).unwrap();
        assert_eq!(follower.poll().unwrap(), 1);
        assert_eq!(follower.poll().unwrap(), 0);
        assert_eq!(
            Snapshot::read(&stats)
                .unwrap()
                .totals
                .get(Counter::Received),
            2
        );
        drop(follower);

        // A restart resumes after what was counted.
        log.write_all(received.as_bytes()).unwrap();
        let mut follower = Follower::new(
            File::open(&log_path).unwrap(),
            Ring::open(&stats, unix_now()).unwrap(),
            "mailgate".into(),
        );
        assert_eq!(follower.poll().unwrap(), 1);
        assert_eq!(follower.ring().snapshot().totals.get(Counter::Received), 3);

        // copytruncate: the file starts again from nothing.
        log.set_len(0).unwrap();
        log.write_all(received.as_bytes()).unwrap();
        assert_eq!(follower.poll().unwrap(), 1);
        assert_eq!(follower.ring().snapshot().totals.get(Counter::Received), 4);
    }
}
