//! One message through every check: clamd, banned attachments, spam
//! rules; then the verdict.

use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use mailgate_config::{ClamdTransfer, MainConfig, open_tables};
use mailgate_ipc::protocol::scanner::{Request, Verdict};
use mailgate_mailauth::facts::Facts;

use crate::archive::Limits;
use crate::banned::{Policy, TimedOut};
use crate::clamd::{Clamd, ClamdAddr, ClamdError, ClamdResult};
use crate::policy::{
    Decider, Findings, Levels, RecipientMaps, parse_action, parse_unchecked_action,
};
use crate::spam::SpamEngine;

pub struct Scanner {
    /// spam_message_size_limit: the spam engine reads at most this much of
    /// a message (amavisd-new's sa_mail_body_size_limit).
    pub spam_size_limit: usize,
    pub clamd: Option<Clamd>,
    pub clamd_timeout: Duration,
    pub banned: Policy,
    pub decider: Decider,
    pub spam: SpamEngine,
}

#[derive(Debug)]
pub enum ScanError {
    Clamd(ClamdError),
    /// scanner_timeout passed; the scan stopped where it was.
    TimedOut,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Clamd(e) => write!(f, "{e}"),
            ScanError::TimedOut => write!(f, "scan timed out (scanner_timeout)"),
        }
    }
}

/// What the spam engine reads: the Received header cleanup will add (so
/// SpamAssassin's trust path starts at the real client, as it does behind
/// Postfix, and a forged Received header below it is judged as the
/// client's claim), then the message, cut after the last whole line within
/// `limit` bytes.
pub fn spam_input(received: &str, content: &[u8], limit: usize) -> Vec<u8> {
    let room = limit.saturating_sub(received.len());
    let cut = if content.len() <= room {
        content.len()
    } else {
        content[..room]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(room, |end| end + 1)
    };
    let mut input = Vec::with_capacity(received.len() + cut);
    input.extend_from_slice(received.as_bytes());
    input.extend_from_slice(&content[..cut]);
    input
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
        let unchecked_action = parse_unchecked_action(&config.get("banned_unchecked_action"))
            .unwrap_or_else(|e| {
                errors.push(e);
                mailgate_ipc::protocol::scanner::Action::Reject
            });
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
            unchecked_action,
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
            spam_size_limit: usize::try_from(config.size("spam_message_size_limit"))
                .unwrap_or(usize::MAX),
            clamd,
            clamd_timeout: config.time("clamd_timeout"),
            banned,
            decider,
            spam,
        })
    }

    /// Scans one message: `content` is what the descriptor `message` holds
    /// (clamd gets one or the other, as `clamd_transfer` says); `received`
    /// is the Received header cleanup adds for the real client. Any failure
    /// to complete a check is an error: the message is never passed as if
    /// it had been scanned. Past `deadline` the scan stops between steps
    /// and inside the banned check's walk.
    pub fn scan(
        &self,
        content: &[u8],
        message: BorrowedFd<'_>,
        request: &Request,
        auth: Option<&Facts>,
        deadline: Instant,
    ) -> Result<Verdict, ScanError> {
        let recipients = &request.recipients;
        let in_time = || {
            if Instant::now() >= deadline {
                Err(ScanError::TimedOut)
            } else {
                Ok(())
            }
        };
        let checks = self.decider.maps.checks(recipients);
        let mut findings = Findings::default();
        if checks.virus
            && let Some(clamd) = &self.clamd
        {
            findings.virus_scanned = true;
            let timeout = self
                .clamd_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            match clamd
                .scan(timeout, content, message)
                .map_err(ScanError::Clamd)?
            {
                ClamdResult::Clean => {}
                ClamdResult::Infected(names) => findings.viruses = names,
            }
        }
        if checks.banned {
            in_time()?;
            let report = self
                .banned
                .check_message(content, Some(deadline))
                .map_err(|TimedOut| ScanError::TimedOut)?;
            findings.banned = report.banned;
            findings.unchecked = report.unchecked;
        }
        if checks.spam {
            in_time()?;
            let input = spam_input(&request.received, content, self.spam_size_limit);
            findings.spam = Some(self.spam.score(&input, auth));
        }
        Ok(self.decider.decide(findings, recipients))
    }
}

#[cfg(test)]
mod tests {
    use super::spam_input;
    use mailgate_spam::{Engine, EngineConfig};

    /// Rules that read the trust path, as SpamAssassin's RDNS_NONE and
    /// its ALL_TRUSTED-style checks do.
    const RULES: &str = "\
header RDNS_NONE X-Spam-Relays-Untrusted =~ /^[^\\]]+ rdns= /\n\
header FIRST_UNTRUSTED_EXTERNAL X-Spam-Relays-Untrusted =~ /^\\[ ip=203\\.0\\.113\\.5 /\n\
header TRUSTED_INTERNAL_HOP X-Spam-Relays-Trusted =~ /ip=10\\.0\\.0\\.1 /\n\
header NOTHING_UNTRUSTED X-Spam-Relays-Untrusted !~ /ip=/\n\
body SPAMMY /cheap pills/\n\
score SPAMMY 3\n";

    const RECEIVED: &str = "Received: from spammer.example (unknown [203.0.113.5])\r\n\
\tby gw.example.com (mailgate) with ESMTP id 4ABC123\r\n\
\tfor <b@example.com>; Mon, 1 Jan 2024 00:00:00 +0000\r\n";

    const SPAM: &str = "From: x@spammer.example\r\nTo: b@example.com\r\nSubject: hi\r\n\r\n\
buy cheap pills\r\n";

    const FORGED: &str = "Received: from mail.example.com (mail.example.com [10.0.0.1])\r\n\
\tby mx.example.com with ESMTP id 1; Mon, 1 Jan 2024 00:00:00 +0000\r\n";

    fn hits(engine: &Engine, message: &[u8]) -> Vec<String> {
        let mut names: Vec<String> = engine
            .score(message)
            .hits
            .into_iter()
            .map(|h| h.name)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_forged_internal_received_header_changes_no_trust_path_rule() {
        let config = EngineConfig {
            bayes_enabled: false,
            ..EngineConfig::default()
        };
        let engine = Engine::from_rules(RULES, &config).unwrap();
        let forged = format!("{FORGED}{SPAM}");
        let plain = hits(&engine, &spam_input(RECEIVED, SPAM.as_bytes(), 1 << 20));
        let with_forgery = hits(&engine, &spam_input(RECEIVED, forged.as_bytes(), 1 << 20));
        assert_eq!(plain, with_forgery);
        assert!(plain.contains(&"RDNS_NONE".to_string()), "{plain:?}");
        assert!(
            plain.contains(&"FIRST_UNTRUSTED_EXTERNAL".to_string()),
            "{plain:?}"
        );
        assert!(!with_forgery.contains(&"TRUSTED_INTERNAL_HOP".to_string()));
        // What the engine concluded without the real client's Received
        // header (the scanner before it was given one): the forged hop
        // looked internal and nothing looked untrusted.
        let blind = hits(&engine, forged.as_bytes());
        assert!(
            blind.contains(&"TRUSTED_INTERNAL_HOP".to_string()),
            "{blind:?}"
        );
        assert!(
            blind.contains(&"NOTHING_UNTRUSTED".to_string()),
            "{blind:?}"
        );
    }

    #[test]
    fn the_spam_engine_reads_a_bounded_prefix_cut_at_a_line_end() {
        let content = b"Subject: x\r\n\r\nline one\r\nline two\r\nline three\r\n";
        let input = spam_input("Received: r\r\n", content, 40);
        assert_eq!(input, b"Received: r\r\nSubject: x\r\n\r\nline one\r\n");
        let whole = spam_input("", content, 1000);
        assert_eq!(whole, content);
    }
}
