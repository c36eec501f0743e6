//! `mailgate learn --spam imaps://user@host/Junk`: learning from users'
//! IMAP folders, as seed 000 did with offlineimap and sa-learn, in one
//! command from cron. Each message learned gets a keyword
//! (`$MailgateSpam` or `$MailgateHam`) so the next run does not fetch it
//! again; `--move-to` or `--delete` clear the folder instead.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use mailgate_spam::{Class, Engine, LearnOutcome};

use crate::error::Error;
use crate::imap::{Client, FolderUrl, ImapError};
use crate::scan::SpamCmdError;

/// The environment variable holding the IMAP password when no file is given.
pub const PASSWORD_VARIABLE: &str = "MAILGATE_IMAP_PASSWORD";
/// Messages fetched and learned per batch.
const BATCH: usize = 200;
/// A message larger than this is skipped (and left where it is).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct ImapOptions {
    /// For imap:// and imaps:// folders: a file whose first line is the
    /// password (else the MAILGATE_IMAP_PASSWORD environment variable).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Trust this CA certificate (PEM) for the IMAP server, instead of the
    /// system's certificate authorities.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// After learning, move the messages into this folder of the same
    /// account.
    #[arg(long, value_name = "FOLDER", conflicts_with = "delete")]
    pub move_to: Option<String>,
    /// After learning, delete the messages from the folder.
    #[arg(long)]
    pub delete: bool,
}

#[derive(Debug)]
pub enum ImapLearnError {
    Url(String),
    NoPassword,
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    Imap {
        url: String,
        source: ImapError,
    },
}

impl std::fmt::Display for ImapLearnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImapLearnError::Url(why) => write!(f, "{why}"),
            ImapLearnError::NoPassword => write!(
                f,
                "an IMAP folder needs a password: --password-file FILE or {PASSWORD_VARIABLE}"
            ),
            ImapLearnError::PasswordFile { path, source } => {
                write!(f, "--password-file {}: {source}", path.display())
            }
            ImapLearnError::Imap { url, source } => write!(f, "{url}: {source}"),
        }
    }
}

impl std::error::Error for ImapLearnError {}

impl From<ImapLearnError> for Error {
    fn from(e: ImapLearnError) -> Error {
        Error::Imap(e)
    }
}

/// Splits the command line's sources into IMAP folders and paths.
pub fn partition(sources: &[PathBuf]) -> Result<(Vec<FolderUrl>, Vec<PathBuf>), Error> {
    let mut folders = Vec::new();
    let mut paths = Vec::new();
    for source in sources {
        match source.to_str().and_then(FolderUrl::parse) {
            Some(Ok(url)) => folders.push(url),
            Some(Err(why)) => return Err(ImapLearnError::Url(why).into()),
            None => paths.push(source.clone()),
        }
    }
    Ok((folders, paths))
}

fn password(options: &ImapOptions) -> Result<String, ImapLearnError> {
    if let Some(path) = &options.password_file {
        let text =
            std::fs::read_to_string(path).map_err(|source| ImapLearnError::PasswordFile {
                path: path.clone(),
                source,
            })?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    std::env::var(PASSWORD_VARIABLE).map_err(|_| ImapLearnError::NoPassword)
}

/// Learns every message of one folder not learned before (or forgets every
/// message), then marks, moves or deletes what was learned. Prints a line.
pub fn learn_folder(
    engine: &Engine,
    url: &FolderUrl,
    class: Class,
    forget: bool,
    options: &ImapOptions,
) -> Result<(), Error> {
    let password = password(options)?;
    let imap = |source| ImapLearnError::Imap {
        url: url.to_string(),
        source,
    };
    let mut client = Client::connect(url, options.ca_file.as_deref(), MAX_MESSAGE).map_err(imap)?;
    client.login(&url.user, &password).map_err(imap)?;
    client.select(&url.folder).map_err(imap)?;
    let keyword = match class {
        Class::Spam => "$MailgateSpam",
        Class::Ham => "$MailgateHam",
    };
    // Marked messages were learned by an earlier run; with --move-to or
    // --delete they are gone from the folder anyway.
    let criteria = if forget {
        "ALL".to_string()
    } else {
        format!("UNKEYWORD {keyword}")
    };
    let uids = client.search(&criteria).map_err(imap)?;
    let mut counts = [0usize; 5];
    let mut fetched = 0usize;
    for chunk in uids.chunks(BATCH) {
        let mut messages = Vec::with_capacity(chunk.len());
        let mut done = Vec::with_capacity(chunk.len());
        for &uid in chunk {
            // A message expunged meanwhile has nothing to fetch.
            if let Some(message) = client.fetch(uid).map_err(imap)? {
                messages.push(message);
                done.push(uid);
            }
        }
        fetched += messages.len();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let outcomes = engine
            .learn_batch(&refs, class, forget)
            .map_err(SpamCmdError::Engine)?;
        for outcome in outcomes {
            counts[match outcome {
                LearnOutcome::Learned => 0,
                LearnOutcome::Relearned => 1,
                LearnOutcome::AlreadyLearned => 2,
                LearnOutcome::Forgotten => 3,
                LearnOutcome::NotLearned => 4,
            }] += 1;
        }
        // Only once the store has them: a crash before this relearns them.
        match (&options.move_to, options.delete, forget) {
            (Some(folder), _, _) => client.move_to(&done, folder).map_err(imap)?,
            (None, true, _) => client.delete(&done).map_err(imap)?,
            (None, false, false) => client.add_flags(&done, keyword).map_err(imap)?,
            (None, false, true) => {}
        }
    }
    client.logout();
    let (nspam, nham) = engine
        .bayes_counts()
        .map_err(SpamCmdError::Engine)?
        .unwrap_or((0, 0));
    let after = match (&options.move_to, options.delete) {
        (Some(folder), _) => format!("; moved to {folder}"),
        (None, true) => "; deleted from the folder".to_string(),
        _ => String::new(),
    };
    let line = if forget {
        format!(
            "{url}: forgot {} of {fetched} message(s){after}; store: {nspam} spam, {nham} ham\n",
            counts[3]
        )
    } else {
        format!(
            "{url}: learned {} of {fetched} new message(s) ({} relearned from the other class, {} already known){after}; store: {nspam} spam, {nham} ham\n",
            counts[0] + counts[1],
            counts[1],
            counts[2]
        )
    };
    std::io::stdout()
        .lock()
        .write_all(line.as_bytes())
        .map_err(Error::Output)
}
