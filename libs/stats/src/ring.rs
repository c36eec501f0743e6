//! The round-robin statistics file: one fixed-size file, as rrdtool's that
//! mailgraph keeps, holding per-bin counts at four resolutions and the
//! totals since the file was made.
//!
//! ```text
//! header (4096 bytes, little-endian):
//!   0 "MGSTATS1"   8 version u32   12 columns u32   16 generation u64
//!   24 created i64   32 updated i64   40 log dev u64   48 log inode u64
//!   56 log offset u64   64 totals [u64; columns]
//! then each archive in ARCHIVES order: rows x bin
//!   bin: stamp u32 (Unix time / width; 0: empty) + counts [u32; columns]
//! ```
//!
//! One writer (the stats service, holding an flock) and any number of
//! readers, which never lock: the writer makes `generation` odd, writes the
//! changed bins and the header fields, then makes it even again; a reader
//! that sees an odd or changed generation reads again (a seqlock). The
//! writer uses lseek and write only (its sandbox has no pwrite).

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::counters::{COLUMNS, Counter, Counts};
use crate::logline::Event;

const MAGIC: &[u8; 8] = b"MGSTATS1";
const VERSION: u32 = 1;
const HEADER: u64 = 4096;
const GENERATION_AT: u64 = 16;
const BIN: usize = 4 + 4 * COLUMNS;

/// One resolution: bins of `width` seconds, `rows` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Archive {
    pub name: &'static str,
    pub width: i64,
    pub rows: usize,
}

/// A day by the minute, a week by 5 minutes, a month by 30 minutes and a
/// year by 6 hours (mailgraph's four graphs).
pub const ARCHIVES: [Archive; 4] = [
    Archive {
        name: "day",
        width: 60,
        rows: 1440,
    },
    Archive {
        name: "week",
        width: 300,
        rows: 2304,
    },
    Archive {
        name: "month",
        width: 1800,
        rows: 1536,
    },
    Archive {
        name: "year",
        width: 21_600,
        rows: 1464,
    },
];

fn archive_offset(index: usize) -> u64 {
    HEADER
        + ARCHIVES[..index]
            .iter()
            .map(|a| (a.rows * BIN) as u64)
            .sum::<u64>()
}

fn file_size() -> u64 {
    archive_offset(ARCHIVES.len())
}

#[derive(Debug)]
pub enum RingError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// Not a statistics file of this version.
    Format {
        path: PathBuf,
        why: String,
    },
    /// The writer kept changing it while we read.
    Busy {
        path: PathBuf,
    },
    /// Another stats service holds it.
    Locked {
        path: PathBuf,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            RingError::Format { path, why } => {
                write!(
                    f,
                    "{}: not a mailgate statistics file ({why})",
                    path.display()
                )
            }
            RingError::Busy { path } => write!(
                f,
                "{}: the stats service kept writing it while it was read; try again",
                path.display()
            ),
            RingError::Locked { path } => write!(
                f,
                "{}: another stats service is writing it (one stats line in master.cf, maxproc 1)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for RingError {}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bin {
    stamp: u32,
    counts: [u32; COLUMNS],
}

/// Where in the log the writer has read up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogPosition {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

/// The file's contents.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub created: i64,
    pub updated: i64,
    pub log: LogPosition,
    pub totals: Counts,
    bins: Vec<Vec<Bin>>,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

impl Snapshot {
    fn empty(now: i64) -> Snapshot {
        Snapshot {
            created: now,
            updated: now,
            log: LogPosition::default(),
            totals: Counts::default(),
            bins: ARCHIVES
                .iter()
                .map(|a| vec![Bin::default(); a.rows])
                .collect(),
        }
    }

    /// Parses the whole file's bytes (its generation aside).
    fn parse(bytes: &[u8], path: &Path) -> Result<Snapshot, RingError> {
        let bad = |why: String| RingError::Format {
            path: path.to_path_buf(),
            why,
        };
        if bytes.len() as u64 != file_size() {
            return Err(bad(format!(
                "{} bytes, expected {}",
                bytes.len(),
                file_size()
            )));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad("bad magic".into()));
        }
        let (version, columns) = (u32_at(bytes, 8), u32_at(bytes, 12));
        if version != VERSION || columns as usize != COLUMNS {
            return Err(bad(format!(
                "version {version} with {columns} columns, expected {VERSION} with {COLUMNS}"
            )));
        }
        let mut totals = Counts::default();
        for (i, total) in totals.0.iter_mut().enumerate() {
            *total = u64_at(bytes, 64 + 8 * i);
        }
        let mut bins = Vec::with_capacity(ARCHIVES.len());
        for (index, archive) in ARCHIVES.iter().enumerate() {
            let start = archive_offset(index) as usize;
            let rows = (0..archive.rows)
                .map(|row| {
                    let at = start + row * BIN;
                    let mut bin = Bin {
                        stamp: u32_at(bytes, at),
                        counts: [0; COLUMNS],
                    };
                    for (i, c) in bin.counts.iter_mut().enumerate() {
                        *c = u32_at(bytes, at + 4 + 4 * i);
                    }
                    bin
                })
                .collect();
            bins.push(rows);
        }
        Ok(Snapshot {
            created: u64_at(bytes, 24) as i64,
            updated: u64_at(bytes, 32) as i64,
            log: LogPosition {
                dev: u64_at(bytes, 40),
                ino: u64_at(bytes, 48),
                offset: u64_at(bytes, 56),
            },
            totals,
            bins,
        })
    }

    /// Reads a consistent copy of the file while the stats service may be
    /// writing it.
    pub fn read(path: &Path) -> Result<Snapshot, RingError> {
        let io = |source| RingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        Snapshot::read_from(&file, path)
    }

    /// Like [`Snapshot::read`], from a file already open.
    pub fn read_from(file: &File, path: &Path) -> Result<Snapshot, RingError> {
        let io = |source| RingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = file.metadata().map_err(io)?.len();
        if size != file_size() {
            return Err(RingError::Format {
                path: path.to_path_buf(),
                why: format!("{size} bytes, expected {}", file_size()),
            });
        }
        let mut bytes = vec![0u8; file_size() as usize];
        for attempt in 0..100 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let before = generation(file).map_err(io)?;
            if before % 2 == 1 {
                continue;
            }
            let read = read_full_at(file, &mut bytes, 0).map_err(io)?;
            if generation(file).map_err(io)? != before {
                continue;
            }
            return Snapshot::parse(&bytes[..read], path);
        }
        Err(RingError::Busy {
            path: path.to_path_buf(),
        })
    }

    /// Counts per bin of one archive for one counter: the `rows` bins that
    /// end with the one holding `end`, oldest first.
    pub fn series(&self, archive: usize, counter: Counter, end: i64) -> Vec<u64> {
        self.bins_until(archive, end)
            .map(|bin| bin.map_or(0, |b| u64::from(b.counts[counter.index()])))
            .collect()
    }

    /// Every counter summed over the last `bins` bins of an archive up to `end`.
    pub fn sum(&self, archive: usize, bins: usize, end: i64) -> Counts {
        let mut counts = Counts::default();
        let all: Vec<Option<&Bin>> = self.bins_until(archive, end).collect();
        for bin in all.iter().skip(all.len().saturating_sub(bins)).flatten() {
            for (total, c) in counts.0.iter_mut().zip(bin.counts.iter()) {
                *total += u64::from(*c);
            }
        }
        counts
    }

    fn bins_until(&self, archive: usize, end: i64) -> impl Iterator<Item = Option<&Bin>> {
        let spec = ARCHIVES[archive];
        let last = end.div_euclid(spec.width);
        let rows = spec.rows as i64;
        (last - rows + 1..=last).map(move |number| {
            if number <= 0 {
                return None;
            }
            let bin = &self.bins[archive][number.rem_euclid(rows) as usize];
            (i64::from(bin.stamp) == number).then_some(bin)
        })
    }
}

fn generation(file: &File) -> io::Result<u64> {
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, GENERATION_AT)?;
    Ok(u64::from_le_bytes(b))
}

fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// The writer's side: the file, its contents in memory and what changed.
pub struct Ring {
    path: PathBuf,
    file: File,
    data: Snapshot,
    generation: u64,
    dirty: BTreeSet<(usize, usize)>,
    header_dirty: bool,
}

impl Ring {
    /// Opens the file for writing, or makes a new one (an unreadable or
    /// old-format file is kept beside it as `PATH.old`). Takes the writer's
    /// lock. Call before the sandbox: it opens, creates and renames files.
    pub fn open(path: &Path, now: i64) -> Result<Ring, RingError> {
        let io = |source| RingError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Opened by root in mail_owner's data/: never through a link.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } != 0
        {
            return Err(RingError::Locked {
                path: path.to_path_buf(),
            });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (data, generation) = match Snapshot::parse(&bytes, path) {
            Ok(data) => (data, u64_at(&bytes, GENERATION_AT as usize)),
            Err(e) => {
                if !bytes.is_empty() {
                    mailgate_log::warning!(
                        "{e}; keeping it as {}.old and starting anew",
                        path.display()
                    );
                    std::fs::copy(path, path.with_extension("old")).map_err(io)?;
                }
                (Snapshot::empty(now), 0)
            }
        };
        let mut ring = Ring {
            path: path.to_path_buf(),
            file,
            data,
            // A writer that died in the middle left it odd.
            generation: generation + generation % 2,
            dirty: BTreeSet::new(),
            header_dirty: true,
        };
        if bytes.len() as u64 != file_size() || ring.generation == 0 {
            ring.file.set_len(file_size()).map_err(io)?;
            ring.write_all_bins().map_err(io)?;
        }
        ring.flush()?;
        Ok(ring)
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.data
    }

    pub fn log_position(&self) -> LogPosition {
        self.data.log
    }

    pub fn set_log_position(&mut self, position: LogPosition) {
        if self.data.log != position {
            self.data.log = position;
            self.header_dirty = true;
        }
    }

    /// Counts one event in every archive whose window still holds its time,
    /// and in the totals. Events from the future (a clock step) count now.
    pub fn count(&mut self, event: Event, now: i64) {
        let time = if event.time > now + 60 {
            now
        } else {
            event.time
        };
        let column = event.counter.index();
        for (index, archive) in ARCHIVES.iter().enumerate() {
            let number = time.div_euclid(archive.width);
            let Ok(stamp) = u32::try_from(number) else {
                continue;
            };
            if number <= now.div_euclid(archive.width) - archive.rows as i64 {
                continue;
            }
            let slot = number.rem_euclid(archive.rows as i64) as usize;
            let bin = &mut self.data.bins[index][slot];
            if bin.stamp != stamp {
                if bin.stamp > stamp {
                    // Older than what the slot holds now.
                    continue;
                }
                *bin = Bin {
                    stamp,
                    counts: [0; COLUMNS],
                };
            }
            bin.counts[column] = bin.counts[column].saturating_add(1);
            self.dirty.insert((index, slot));
        }
        self.data.totals.0[column] += 1;
        self.data.updated = now;
        self.header_dirty = true;
    }

    /// Writes what changed, under the generation protocol.
    pub fn flush(&mut self) -> Result<(), RingError> {
        if self.dirty.is_empty() && !self.header_dirty {
            return Ok(());
        }
        let path = self.path.clone();
        let io = |source| RingError::Io {
            path: path.clone(),
            source,
        };
        self.generation += 1;
        self.write_generation().map_err(&io)?;
        let dirty = std::mem::take(&mut self.dirty);
        for (index, slot) in dirty {
            let bin = self.data.bins[index][slot];
            let at = archive_offset(index) + (slot * BIN) as u64;
            self.write_at(at, &encode_bin(&bin)).map_err(&io)?;
        }
        let header = self.encode_header();
        // The generation field stays as it is until the last write.
        self.write_at(0, &header[..GENERATION_AT as usize])
            .map_err(&io)?;
        self.write_at(GENERATION_AT + 8, &header[GENERATION_AT as usize + 8..])
            .map_err(&io)?;
        self.generation += 1;
        self.write_generation().map_err(&io)?;
        self.header_dirty = false;
        Ok(())
    }

    fn write_all_bins(&mut self) -> io::Result<()> {
        for (index, archive) in ARCHIVES.iter().enumerate() {
            let mut bytes = Vec::with_capacity(archive.rows * BIN);
            for bin in &self.data.bins[index] {
                bytes.extend_from_slice(&encode_bin(bin));
            }
            self.write_at(archive_offset(index), &bytes)?;
        }
        Ok(())
    }

    fn write_generation(&mut self) -> io::Result<()> {
        let generation = self.generation.to_le_bytes();
        self.write_at(GENERATION_AT, &generation)
    }

    /// lseek + write: the stats service's sandbox has no pwrite.
    fn write_at(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(at))?;
        self.file.write_all(bytes)
    }

    fn encode_header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(64 + 8 * COLUMNS);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&(COLUMNS as u32).to_le_bytes());
        h.extend_from_slice(&self.generation.to_le_bytes());
        h.extend_from_slice(&(self.data.created as u64).to_le_bytes());
        h.extend_from_slice(&(self.data.updated as u64).to_le_bytes());
        h.extend_from_slice(&self.data.log.dev.to_le_bytes());
        h.extend_from_slice(&self.data.log.ino.to_le_bytes());
        h.extend_from_slice(&self.data.log.offset.to_le_bytes());
        for total in self.data.totals.0 {
            h.extend_from_slice(&total.to_le_bytes());
        }
        h
    }
}

fn encode_bin(bin: &Bin) -> [u8; BIN] {
    let mut out = [0u8; BIN];
    out[..4].copy_from_slice(&bin.stamp.to_le_bytes());
    for (i, c) in bin.counts.iter().enumerate() {
        out[4 + 4 * i..8 + 4 * i].copy_from_slice(&c.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Reason;

    fn event(time: i64, counter: Counter) -> Event {
        Event { time, counter }
    }

    #[test]
    fn counts_survive_a_reopen_and_readers_see_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats");
        let now = 1_796_309_385;
        let mut ring = Ring::open(&path, now).unwrap();
        assert!(matches!(
            Ring::open(&path, now),
            Err(RingError::Locked { .. })
        ));
        ring.count(event(now, Counter::Received), now);
        ring.count(event(now - 30, Counter::Received), now);
        ring.count(event(now - 3600, Counter::Delivered), now);
        ring.count(
            event(now - 2 * 86_400, Counter::Rejected(Reason::Relay)),
            now,
        );
        // Too old for every archive, but part of the totals.
        ring.count(event(now - 400 * 86_400, Counter::Bounced), now);
        ring.set_log_position(LogPosition {
            dev: 1,
            ino: 2,
            offset: 3,
        });
        ring.flush().unwrap();

        let snap = Snapshot::read(&path).unwrap();
        assert_eq!(snap.totals.get(Counter::Received), 2);
        assert_eq!(snap.totals.get(Counter::Bounced), 1);
        assert_eq!(
            snap.log,
            LogPosition {
                dev: 1,
                ino: 2,
                offset: 3
            }
        );
        let minutes = snap.series(0, Counter::Received, now);
        assert_eq!(minutes.len(), 1440);
        assert_eq!(minutes.iter().sum::<u64>(), 2);
        assert_eq!(*minutes.last().unwrap() + minutes[1438], 2);
        assert_eq!(snap.sum(0, 60, now).get(Counter::Received), 2);
        assert_eq!(snap.sum(0, 60, now).get(Counter::Delivered), 0);
        assert_eq!(snap.sum(0, 1440, now).get(Counter::Delivered), 1);
        assert_eq!(snap.sum(0, 1440, now).rejected(), 0);
        assert_eq!(snap.sum(1, 2304, now).rejected(), 1);
        assert_eq!(snap.sum(3, 1464, now).get(Counter::Bounced), 0);
        // A day later the minute archive has forgotten them.
        assert_eq!(snap.sum(0, 1440, now + 86_400).get(Counter::Received), 0);
        drop(ring);

        let mut ring = Ring::open(&path, now + 10).unwrap();
        assert_eq!(ring.snapshot().totals.get(Counter::Received), 2);
        ring.count(event(now + 10, Counter::Received), now + 10);
        ring.flush().unwrap();
        assert_eq!(
            Snapshot::read(&path)
                .unwrap()
                .sum(0, 60, now + 10)
                .get(Counter::Received),
            3
        );
    }

    #[test]
    fn a_foreign_file_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats");
        std::fs::write(&path, b"something else").unwrap();
        assert!(matches!(
            Snapshot::read(&path),
            Err(RingError::Format { .. })
        ));
        let ring = Ring::open(&path, 1000).unwrap();
        assert_eq!(ring.snapshot().totals, Counts::default());
        assert_eq!(
            std::fs::read(path.with_extension("old")).unwrap(),
            b"something else"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), file_size());
        Snapshot::read(&path).unwrap();
    }
}
