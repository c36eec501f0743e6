//! `mailgate learn --spam|--ham [--forget] PATH...`: trains (or untrains) the Bayes
//! store from Maildir folders, directories of messages and mbox files, like
//! sa-learn. Every run first folds the scanner's auto-learn journals into the
//! store; `mailgate learn --sync` does only that (sa-learn --sync).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use mailgate_config::MainConfig;
use mailgate_spam::{Class, LearnOutcome, StoreLock, sync_journals};

use crate::control::{self, MasterState};
use crate::error::Error;
use crate::locate::{self, Invocation};
use crate::scan::{self, SpamCmdError};

/// Messages learned per transaction: one disk sync per batch keeps learning a large
/// corpus fast, and a crash loses at most the batch in progress.
const BATCH: usize = 500;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("class").args(["spam", "ham"])))]
pub struct LearnArgs {
    /// The messages are spam.
    #[arg(long, required_unless_present_any = ["ham", "sync"])]
    pub spam: bool,
    /// The messages are ham (legitimate mail).
    #[arg(long)]
    pub ham: bool,
    /// Unlearn the messages instead.
    #[arg(long)]
    pub forget: bool,
    /// Only fold the scanner's auto-learn journals into the store.
    #[arg(long, conflicts_with_all = ["spam", "ham", "forget", "paths"])]
    pub sync: bool,
    /// Message files, Maildir folders, directories or mbox files; or IMAP
    /// folders as imaps://user@host/Folder (imap:// uses STARTTLS).
    #[arg(value_name = "PATH|URL", required_unless_present = "sync")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub imap: crate::imap_learn::ImapOptions,
}

pub fn run(invocation: &Invocation, args: &LearnArgs) -> Result<(), Error> {
    let config = invocation.load()?;
    let scanner_runs = !config.get("content_scanner").trim().is_empty()
        && matches!(
            control::master_state(&locate::pid_file(&config))?,
            MasterState::Running(_)
        );
    let bayes_dir = config.get("spam_bayes_directory");
    // The scanner works on a snapshot of the store; while this holds the
    // lock, no scanner copies a store half learned. (Without a store,
    // learn() says so.)
    let lock = match bayes_dir.trim() {
        "" => None,
        dir => {
            let lock = StoreLock::exclusive(Path::new(dir)).map_err(SpamCmdError::Engine)?;
            let synced = sync_journals(Path::new(dir)).map_err(SpamCmdError::Engine)?;
            if synced.learned > 0 || args.sync {
                let line = format!(
                    "learned {} auto-learned message(s) from the scanners' journals \
                     ({} journal(s) of exited scanners removed)\n",
                    synced.learned, synced.removed
                );
                io::stdout()
                    .lock()
                    .write_all(line.as_bytes())
                    .map_err(Error::Output)?;
            }
            Some(lock)
        }
    };
    if !args.sync {
        crate::confine::in_child(|| learn(&config, args))?;
    } else if lock.is_none() {
        return Err(SpamCmdError::Engine(mailgate_spam::SpamError::NoBayesStore).into());
    }
    drop(lock);
    if scanner_runs {
        // New scanners take a fresh snapshot; sessions in progress finish.
        control::reload(invocation)?;
    }
    Ok(())
}

/// Learns into the store that `config` names and prints a summary.
fn learn(config: &MainConfig, args: &LearnArgs) -> Result<(), Error> {
    let engine = scan::engine(config)?;
    let class = if args.spam { Class::Spam } else { Class::Ham };
    let (folders, paths) = crate::imap_learn::partition(&args.paths)?;
    for folder in &folders {
        crate::imap_learn::learn_folder(&engine, folder, class, args.forget, &args.imap)?;
    }
    if !folders.is_empty() && paths.is_empty() {
        return Ok(());
    }
    let sources = scan::collect(&paths)?;
    crate::confine::enter(config, &mailgate_sandbox::profiles::LEARN)?;
    let mut counts = [0usize; 5];
    for chunk in sources.chunks(BATCH) {
        let messages = chunk
            .iter()
            .map(scan::read)
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let outcomes = engine
            .learn_batch(&refs, class, args.forget)
            .map_err(SpamCmdError::Engine)?;
        for o in outcomes {
            counts[match o {
                LearnOutcome::Learned => 0,
                LearnOutcome::Relearned => 1,
                LearnOutcome::AlreadyLearned => 2,
                LearnOutcome::Forgotten => 3,
                LearnOutcome::NotLearned => 4,
            }] += 1;
        }
    }
    let (nspam, nham) = engine
        .bayes_counts()
        .map_err(SpamCmdError::Engine)?
        .unwrap_or((0, 0));
    let summary = if args.forget {
        format!(
            "forgot {} of {} message(s) ({} were not learned); store: {nspam} spam, {nham} ham\n",
            counts[3],
            sources.len(),
            counts[4]
        )
    } else {
        format!(
            "learned {} of {} message(s) ({} relearned from the other class, {} already known); store: {nspam} spam, {nham} ham\n",
            counts[0] + counts[1],
            sources.len(),
            counts[1],
            counts[2]
        )
    };
    io::stdout()
        .lock()
        .write_all(summary.as_bytes())
        .map_err(Error::Output)
}
