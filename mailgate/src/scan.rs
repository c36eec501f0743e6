//! `mailgate scan [--json] PATH...`: the spam engine run offline on files, Maildir
//! folders, directories and mbox files, on all cores; how an administrator tests a
//! rule change before reloading.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use mailgate_config::MainConfig;
use mailgate_spam::{Engine, EngineConfig, Levels, SpamError, SpamReport};
use rayon::prelude::*;

use crate::error::{Error, say};
use crate::locate::Invocation;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// One JSON object per message: path, score, spam, action, hits, bayes.
    #[arg(long)]
    pub json: bool,

    /// List the rules the engine cannot evaluate (file:line, name, test) and exit.
    #[arg(long, conflicts_with = "paths")]
    pub unsupported: bool,

    /// Message files, Maildir folders (cur/ and new/), directories of messages or
    /// mbox files.
    #[arg(value_name = "PATH", required_unless_present = "unsupported")]
    pub paths: Vec<PathBuf>,
}

/// Why `scan` or `learn` failed.
#[derive(Debug)]
pub enum SpamCmdError {
    Engine(SpamError),
    Read {
        path: PathBuf,
        source: io::Error,
    },
    /// The engine failed on a message (a bug: it must score any input).
    Panic {
        source: String,
        why: String,
    },
    /// This many messages were reported as not scored; the others were.
    Unscored(usize),
}

impl fmt::Display for SpamCmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpamCmdError::Engine(e) => write!(f, "{e}"),
            SpamCmdError::Read { path, source } => write!(f, "{}: {source}", path.display()),
            SpamCmdError::Panic { source, why } => write!(
                f,
                "{source}: cannot score this message: the spam engine failed ({why}); \
                 please report it with the message"
            ),
            SpamCmdError::Unscored(n) => write!(f, "{n} message(s) could not be scored"),
        }
    }
}

impl std::error::Error for SpamCmdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpamCmdError::Engine(e) => Some(e),
            SpamCmdError::Read { source, .. } => Some(source),
            SpamCmdError::Panic { .. } | SpamCmdError::Unscored(_) => None,
        }
    }
}

impl From<SpamCmdError> for Error {
    fn from(e: SpamCmdError) -> Error {
        Error::Spam(e)
    }
}

/// One message to process: a whole file, or the n-th message of an mbox file.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: PathBuf,
    /// Index inside an mbox file holding several messages.
    pub index: Option<usize>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}:{}", self.path.display(), i + 1),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> SpamCmdError + '_ {
    move |source| SpamCmdError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Splits an mbox at its `From ` separator lines. A file with one separator (as
/// the SpamAssassin corpus has) is one message.
pub fn split_mbox(data: &[u8]) -> Vec<&[u8]> {
    if !data.starts_with(b"From ") {
        return vec![data];
    }
    let mut starts = vec![0];
    let mut i = 0;
    while let Some(p) = data[i..].windows(7).position(|w| w == b"\n\nFrom ") {
        starts.push(i + p + 2);
        i += p + 2;
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| &data[s..starts.get(n + 1).map_or(data.len(), |&e| e - 1)])
        .collect()
}

/// Every message under the given paths, in a stable order.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<Source>, SpamCmdError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(read_error(path))?;
        if !meta.is_dir() {
            add_file(path, &mut out);
            continue;
        }
        // A Maildir holds its messages in cur/ and new/ (tmp/ is unfinished).
        let is_maildir = path.join("cur").is_dir() || path.join("new").is_dir();
        let dirs: Vec<PathBuf> = if is_maildir {
            ["cur", "new"]
                .iter()
                .map(|d| path.join(d))
                .filter(|d| d.is_dir())
                .collect()
        } else {
            vec![path.clone()]
        };
        for dir in dirs {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(read_error(&dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
                })
                .collect();
            entries.sort();
            for entry in entries {
                if entry.is_dir() {
                    out.extend(collect(std::slice::from_ref(&entry))?);
                } else {
                    add_file(&entry, &mut out);
                }
            }
        }
    }
    Ok(out)
}

/// Adds a file's messages. A file that cannot be read is added as one message,
/// whose read error is then reported in its turn, among the others.
fn add_file(path: &Path, out: &mut Vec<Source>) {
    let n = crate::confine::read(path).map_or(1, |data| split_mbox(&data).len());
    if n > 1 {
        out.extend((0..n).map(|i| Source {
            path: path.to_path_buf(),
            index: Some(i),
        }));
    } else {
        out.push(Source {
            path: path.to_path_buf(),
            index: None,
        });
    }
}

/// The bytes of one message.
pub fn read(source: &Source) -> Result<Vec<u8>, SpamCmdError> {
    let data = crate::confine::read(&source.path).map_err(read_error(&source.path))?;
    Ok(match source.index {
        Some(i) => split_mbox(&data)
            .get(i)
            .map(|m| m.to_vec())
            .unwrap_or_default(),
        None => data,
    })
}

/// The engine as main.cf configures it.
pub fn engine(config: &MainConfig) -> Result<Engine, SpamCmdError> {
    Engine::load(&EngineConfig::from_main_cf(config)).map_err(SpamCmdError::Engine)
}

fn line(source: &Source, report: &SpamReport, levels: &Levels, json: bool) -> String {
    let action = levels.action(report.score);
    if !json {
        return format!(
            "{source} {action} {:.2} {}",
            report.score,
            report.rule_names()
        );
    }
    let hits: Vec<serde_json::Value> = report
        .hits
        .iter()
        .map(|h| serde_json::json!({"name": h.name, "score": h.score}))
        .collect();
    serde_json::json!({
        "path": source.to_string(),
        "score": report.score,
        "required": report.required,
        "spam": report.score >= levels.tag2,
        "action": action,
        "hits": hits,
        "bayes": report.bayes_probability,
    })
    .to_string()
}

pub fn run(invocation: &Invocation, args: &ScanArgs) -> Result<(), Error> {
    let config = invocation.load()?;
    let engine = Engine::load_read_only(&EngineConfig::from_main_cf(&config))
        .map_err(SpamCmdError::Engine)?;
    let mut out = io::stdout().lock();
    if args.unsupported {
        let text: String = engine
            .unsupported_rules()
            .iter()
            .map(|u| format!("{}:{}: {} {}\n", u.file.display(), u.line, u.name, u.test))
            .collect();
        return write_out(&mut out, text.as_bytes());
    }
    let levels = Levels::from_main_cf(&config);
    let sources = collect(&args.paths)?;
    crate::confine::enter(&config, &mailgate_sandbox::profiles::SCAN)?;
    let lines: Vec<Result<String, SpamCmdError>> = quietly(|| {
        sources
            .par_iter()
            .map(|s| score_one(&engine, s).map(|r| line(s, &r, &levels, args.json)))
            .collect()
    });
    let mut text = String::new();
    let mut failed = 0;
    for l in lines {
        match l {
            Ok(l) => {
                text.push_str(&l);
                text.push('\n');
            }
            // One message that cannot be read or scored costs only its own line.
            Err(e) => {
                say(format_args!("warning: {e}"));
                failed += 1;
            }
        }
    }
    write_out(&mut out, text.as_bytes())?;
    match failed {
        0 => Ok(()),
        n => Err(SpamCmdError::Unscored(n).into()),
    }
}

/// Reads and scores one message. The engine is written not to panic on any
/// input; should it still, the panic costs this message only, and is reported
/// as an error naming it.
pub fn score_one(engine: &Engine, source: &Source) -> Result<SpamReport, SpamCmdError> {
    let message = read(source)?;
    guarded(source, || engine.score(&message))
}

/// `f()`, or the panic it raised as an error naming the message.
fn guarded<T>(source: &Source, f: impl FnOnce() -> T) -> Result<T, SpamCmdError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| SpamCmdError::Panic {
        source: source.to_string(),
        why: LAST_PANIC.with(|p| p.take()).unwrap_or_default(),
    })
}

thread_local! {
    /// What the last panic on this thread said, for the error line.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with panics recorded for `score_one`'s error line instead of printed
/// with a backtrace; the previous hook is restored afterwards.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{what}{at}")));
    }));
    let result = f();
    std::panic::set_hook(previous);
    result
}

fn write_out(out: &mut impl Write, text: &[u8]) -> Result<(), Error> {
    match out.write_all(text).and_then(|()| out.flush()) {
        // The reader went away (`mailgate scan ... | head`): nothing left to do.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Output(e)),
        Ok(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_costs_one_message() {
        let source = Source {
            path: "m".into(),
            index: None,
        };
        let results: Vec<Result<u32, SpamCmdError>> = quietly(|| {
            (0..3u32)
                .map(|i| guarded(&source, || if i == 1 { panic!("boom {i}") } else { i }))
                .collect()
        });
        assert!(matches!(results[0], Ok(0)));
        assert!(matches!(results[2], Ok(2)));
        let e = results[1].as_ref().unwrap_err().to_string();
        assert!(e.starts_with("m: cannot score this message"), "{e}");
        assert!(e.contains("boom 1 at mailgate/src/scan.rs:"), "{e}");
    }

    #[test]
    fn mbox_splitting() {
        assert_eq!(split_mbox(b"Subject: a\n\nb\n").len(), 1);
        assert_eq!(split_mbox(b"From a@b Mon\nSubject: a\n\nb\n").len(), 1);
        let two = split_mbox(b"From a Mon\nSubject: 1\n\nx\n\nFrom b Tue\nSubject: 2\n\ny\n");
        assert_eq!(two.len(), 2);
        assert!(two[1].starts_with(b"From b"));
        assert!(two[0].ends_with(b"x\n"));
    }

    #[test]
    fn collects_maildir_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        for d in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(md.join(d)).unwrap();
        }
        std::fs::write(md.join("cur/1:2,S"), "Subject: a\n\nx\n").unwrap();
        std::fs::write(md.join("new/2"), "Subject: b\n\nx\n").unwrap();
        std::fs::write(md.join("tmp/3"), "partial").unwrap();
        let plain = dir.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        std::fs::write(
            plain.join("m"),
            "From a Mon\nS: 1\n\nx\n\nFrom b Tue\nS: 2\n\ny\n",
        )
        .unwrap();
        let found = collect(&[md, plain]).unwrap();
        let names: Vec<String> = found.iter().map(|s| s.to_string()).collect();
        assert_eq!(found.len(), 4, "{names:?}");
        assert!(names[3].ends_with("plain/m:2"));
        assert_eq!(read(&found[3]).unwrap(), b"From b Tue\nS: 2\n\ny\n");
    }
}
