//! `mailgate learn --spam|--ham [--forget] PATH...`: trains (or untrains) the Bayes
//! store from Maildir folders, directories of messages and mbox files, like
//! sa-learn.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;
use mailgate_spam::{Class, LearnOutcome};

use crate::control::{self, MasterState};
use crate::error::Error;
use crate::locate::{self, Invocation};
use crate::scan::{self, SpamCmdError};

/// Messages learned per transaction: one disk sync per batch keeps learning a large
/// corpus fast, and a crash loses at most the batch in progress.
const BATCH: usize = 500;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("class").required(true).args(["spam", "ham"])))]
pub struct LearnArgs {
    /// The messages are spam.
    #[arg(long)]
    pub spam: bool,
    /// The messages are ham (legitimate mail).
    #[arg(long)]
    pub ham: bool,
    /// Unlearn the messages instead.
    #[arg(long)]
    pub forget: bool,
    /// Message files, Maildir folders, directories or mbox files.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(invocation: &Invocation, args: &LearnArgs) -> Result<(), Error> {
    let config = invocation.load()?;
    // The scanner opens the store before its sandbox and holds it (locked)
    // while it runs; it may write no files, so it cannot learn for us.
    let scanner_runs = !config.get("content_scanner").trim().is_empty()
        && matches!(
            control::master_state(&locate::pid_file(&config))?,
            MasterState::Running(_)
        );
    if scanner_runs {
        let store = PathBuf::from(config.get("spam_bayes_directory"));
        return Err(Error::Spam(SpamCmdError::StoreInUse(store)));
    }
    let engine = scan::engine(&config)?;
    let class = if args.spam { Class::Spam } else { Class::Ham };
    let sources = scan::collect(&args.paths)?;
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
