//! One message through every check: clamd, banned attachments, spam
//! rules; then the verdict.

use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::Duration;

use mailgate_config::{ClamdTransfer, MainConfig, open_tables};
use mailgate_ipc::protocol::scanner::Verdict;

use crate::archive::Limits;
use crate::banned::Policy;
use crate::clamd::{Clamd, ClamdAddr, ClamdError, ClamdResult};
use crate::policy::{Decider, Findings, Levels, RecipientMaps, parse_action};
use crate::spam::SpamEngine;

pub struct Scanner {
    pub clamd: Option<Clamd>,
    pub clamd_timeout: Duration,
    pub banned: Policy,
    pub decider: Decider,
    pub spam: SpamEngine,
}

#[derive(Debug)]
pub enum ScanError {
    Clamd(ClamdError),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Clamd(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ScanError {}

impl Scanner {
    /// Reads everything from main.cf and the tables it names; every
    /// problem is reported at once, as admin-readable lines.
    pub fn from_config(config: &MainConfig, chroot: Option<&Path>) -> Result<Scanner, String> {
        let mut errors = Vec::new();
        let dir = config.config_dir();
        let mut tables = |name: &str| match open_tables(&config.list(name), dir) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{name}: {e}"));
                Vec::new()
            }
        };
        let maps = RecipientMaps {
            spam_lovers: tables("spam_lovers_maps"),
            virus_lovers: tables("virus_lovers_maps"),
            banned_lovers: tables("banned_files_lovers_maps"),
            bypass_spam: tables("bypass_spam_checks_maps"),
            bypass_virus: tables("bypass_virus_checks_maps"),
            bypass_banned: tables("bypass_banned_checks_maps"),
        };
        let banned_tables = tables("banned_filename_re");
        let levels = Levels::from_main_cf(config);
        let mut action = |name: &str| {
            parse_action(name, &config.get(name)).unwrap_or_else(|e| {
                errors.push(e);
                mailgate_ipc::protocol::scanner::Action::Reject
            })
        };
        let decider = Decider {
            levels,
            virus_action: action("virus_action"),
            banned_action: action("banned_action"),
            spam_kill_action: action("spam_kill_action"),
            subject_tag: config.get("spam_subject_tag"),
            maps,
        };
        let lower_set = |name: &str| -> HashSet<String> {
            config
                .list(name)
                .iter()
                .map(|s| s.trim_start_matches('.').to_ascii_lowercase())
                .collect()
        };
        let count = |name: &str| config.int(name).max(0) as u64;
        let banned = Policy {
            extensions: lower_set("banned_filename_extensions"),
            mime_types: lower_set("banned_mime_types"),
            tables: banned_tables,
            executable_content: config.bool("banned_executable_content"),
            limits: Limits {
                depth: count("scanner_archive_depth") as usize,
                max_size: config.size("scanner_archive_max_size"),
                max_ratio: count("scanner_archive_max_ratio").max(1),
                max_entries: count("scanner_archive_max_entries") as usize,
            },
        };
        let addr = match config.get("clamd_socket").as_str() {
            "" => None,
            spec => match ClamdAddr::parse(spec) {
                Ok(addr) => match chroot {
                    Some(root) => addr.inside_chroot(root).map_err(|e| errors.push(e)).ok(),
                    None => Some(addr),
                },
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        // Checked even without clamd_socket: a bad value is a mistake anyway.
        let transfer = ClamdTransfer::from_main_cf(config)
            .map_err(|e| errors.push(format!("clamd_transfer: {e}")))
            .ok();
        let clamd = match (addr, transfer) {
            (Some(addr), Some(transfer)) => {
                Clamd::new(addr, transfer).map_err(|e| errors.push(e)).ok()
            }
            _ => None,
        };
        let spam = SpamEngine::load(config).map_err(|e| errors.push(e)).ok();
        let Some(spam) = spam.filter(|_| errors.is_empty()) else {
            return Err(errors.join("; "));
        };
        Ok(Scanner {
            clamd,
            clamd_timeout: config.time("clamd_timeout"),
            banned,
            decider,
            spam,
        })
    }

    /// Scans one message: `content` is what the descriptor `message` holds
    /// (clamd gets one or the other, as `clamd_transfer` says). Any failure
    /// to complete a check is an error: the message is never passed as if
    /// it had been scanned.
    pub fn scan(
        &self,
        content: &[u8],
        message: BorrowedFd<'_>,
        recipients: &[String],
    ) -> Result<Verdict, ScanError> {
        let checks = self.decider.maps.checks(recipients);
        let mut findings = Findings::default();
        if checks.virus
            && let Some(clamd) = &self.clamd
        {
            findings.virus_scanned = true;
            match clamd
                .scan(self.clamd_timeout, content, message)
                .map_err(ScanError::Clamd)?
            {
                ClamdResult::Clean => {}
                ClamdResult::Infected(names) => findings.viruses = names,
            }
        }
        if checks.banned {
            findings.banned = self.banned.check_message(content);
        }
        if checks.spam {
            findings.spam = Some(self.spam.score(content));
        }
        Ok(self.decider.decide(findings, recipients))
    }
}
