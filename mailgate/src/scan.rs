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

use crate::error::Error;
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
    Read { path: PathBuf, source: io::Error },
}

impl fmt::Display for SpamCmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpamCmdError::Engine(e) => write!(f, "{e}"),
            SpamCmdError::Read { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for SpamCmdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpamCmdError::Engine(e) => Some(e),
            SpamCmdError::Read { source, .. } => Some(source),
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
            add_file(path, &mut out)?;
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
                    add_file(&entry, &mut out)?;
                }
            }
        }
    }
    Ok(out)
}

fn add_file(path: &Path, out: &mut Vec<Source>) -> Result<(), SpamCmdError> {
    let data = crate::confine::read(path).map_err(read_error(path))?;
    let n = split_mbox(&data).len();
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
    Ok(())
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
    let lines: Vec<Result<String, SpamCmdError>> = sources
        .par_iter()
        .map(|s| read(s).map(|m| line(s, &engine.score(&m), &levels, args.json)))
        .collect();
    let mut text = String::new();
    for l in lines {
        text.push_str(&l?);
        text.push('\n');
    }
    write_out(&mut out, text.as_bytes())
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
