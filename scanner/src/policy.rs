//! What the scanner decides: from the findings (viruses, banned parts,
//! spam score) and the recipients' preferences to one verdict, with
//! amavisd-new's levels and lover/bypass maps.

use mailgate_config::{AddressLookup, Table, lookup_address};
use mailgate_ipc::protocol::scanner::{Action, BannedPart, RuleHit, Verdict};

/// spam_kill_action, virus_action and banned_action.
pub fn parse_action(parameter: &str, value: &str) -> Result<Action, String> {
    match value.to_ascii_lowercase().as_str() {
        "reject" => Ok(Action::Reject),
        "quarantine" => Ok(Action::Quarantine),
        "discard" => Ok(Action::Discard),
        _ => Err(format!(
            "{parameter} = {value}: expected reject, quarantine or discard"
        )),
    }
}

/// banned_unchecked_action: as parse_action, and also `pass`
/// (amavisd-new's default for UNCHECKED: deliver with an alert header).
pub fn parse_unchecked_action(value: &str) -> Result<Action, String> {
    if value.eq_ignore_ascii_case("pass") {
        return Ok(Action::Pass);
    }
    parse_action("banned_unchecked_action", value).map_err(|e| format!("{e} or pass"))
}

pub use mailgate_spam::Levels;

/// Per-recipient tables, as amavisd-new's %*_lovers_maps and
/// %bypass_*_checks_maps. A key found with a value other than "no" counts.
#[derive(Default)]
pub struct RecipientMaps {
    pub spam_lovers: Vec<Table>,
    pub virus_lovers: Vec<Table>,
    pub banned_lovers: Vec<Table>,
    pub bypass_spam: Vec<Table>,
    pub bypass_virus: Vec<Table>,
    pub bypass_banned: Vec<Table>,
}

fn listed(tables: &[Table], address: &str) -> bool {
    let opts = AddressLookup {
        parent_domains: true,
        ..AddressLookup::default()
    };
    tables.iter().any(|t| {
        lookup_address(t, address, &opts).is_some_and(|v| {
            let v = v.trim();
            !(v.eq_ignore_ascii_case("no") || v == "0" || v.eq_ignore_ascii_case("dunno"))
        })
    })
}

/// True when every recipient is listed. One message gets one SMTP answer,
/// so a check is skipped, or a kill waived, only when all recipients want
/// it; otherwise one listed address would open the door for all the others.
fn all_listed(tables: &[Table], recipients: &[String]) -> bool {
    !tables.is_empty() && !recipients.is_empty() && recipients.iter().all(|r| listed(tables, r))
}

/// Which checks run for a message, from the bypass maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    pub virus: bool,
    pub banned: bool,
    pub spam: bool,
}

impl RecipientMaps {
    pub fn checks(&self, recipients: &[String]) -> Checks {
        Checks {
            virus: !all_listed(&self.bypass_virus, recipients),
            banned: !all_listed(&self.bypass_banned, recipients),
            spam: !all_listed(&self.bypass_spam, recipients),
        }
    }
}

pub struct Decider {
    pub levels: Levels,
    pub virus_action: Action,
    pub banned_action: Action,
    /// For content the banned check could not look into.
    pub unchecked_action: Action,
    pub spam_kill_action: Action,
    pub subject_tag: String,
    pub maps: RecipientMaps,
}

/// The spam engine's findings, as the verdict needs them.
#[derive(Clone, Debug, PartialEq)]
pub struct SpamScore {
    pub score: f64,
    pub hits: Vec<RuleHit>,
    /// With auto-learn on, what became of the message, as SpamAssassin reports
    /// it: spam, ham, no, or failed.
    pub autolearn: Option<&'static str>,
}

/// What the scans found. `virus_scanned` is false when clamd was not
/// asked (not configured, or bypassed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Findings {
    pub virus_scanned: bool,
    pub viruses: Vec<String>,
    pub banned: Vec<BannedPart>,
    /// Parts the banned check could not look into.
    pub unchecked: Vec<BannedPart>,
    pub spam: Option<SpamScore>,
}

impl Decider {
    pub fn decide(&self, findings: Findings, recipients: &[String]) -> Verdict {
        let maps = &self.maps;
        let mut headers = Vec::new();
        if findings.virus_scanned {
            headers.push(("X-Virus-Scanned".to_string(), "mailgate".to_string()));
        }
        if let Some(first) = findings.unchecked.first() {
            headers.push((
                "X-Unchecked-Content".to_string(),
                format!("{} ({})", first.name, first.reason),
            ));
        }
        let mut subject_tag = None;
        if let Some(spam) = &findings.spam {
            headers.extend(self.spam_headers(spam));
            if spam.score >= self.levels.tag2 {
                subject_tag = Some(self.subject_tag.clone()).filter(|t| !t.is_empty());
            }
        }
        let (action, reason) =
            if !findings.viruses.is_empty() && !all_listed(&maps.virus_lovers, recipients) {
                (
                    self.virus_action,
                    format!("virus found: {}", findings.viruses.join(", ")),
                )
            } else if let Some(first) = findings.banned.first()
                && !all_listed(&maps.banned_lovers, recipients)
            {
                (
                    self.banned_action,
                    format!("banned attachment: {} ({})", first.name, first.reason),
                )
            } else if let Some(first) = findings.unchecked.first()
                && !all_listed(&maps.banned_lovers, recipients)
                && self.unchecked_action != Action::Pass
            {
                (
                    self.unchecked_action,
                    format!("unchecked content: {} ({})", first.name, first.reason),
                )
            } else if let Some(spam) = &findings.spam
                && spam.score >= self.levels.kill
                && !all_listed(&maps.spam_lovers, recipients)
            {
                (
                    self.spam_kill_action,
                    format!("message looks like spam (score {:.1})", spam.score),
                )
            } else {
                (Action::Pass, String::new())
            };
        Verdict {
            action,
            reason,
            score: findings.spam.as_ref().map(|s| s.score),
            required: findings.spam.as_ref().map(|_| self.levels.tag2),
            hits: findings.spam.map(|s| s.hits).unwrap_or_default(),
            viruses: findings.viruses,
            banned: findings.banned,
            headers,
            subject_tag,
            reply: None,
            authenticated: None,
        }
    }

    /// amavisd-new's header set: X-Spam-Flag, X-Spam-Score, X-Spam-Level,
    /// X-Spam-Status, from spam_tag_level on.
    fn spam_headers(&self, spam: &SpamScore) -> Vec<(String, String)> {
        if spam.score < self.levels.tag {
            return Vec::new();
        }
        let is_spam = spam.score >= self.levels.tag2;
        let stars = if spam.score > 0.0 {
            "*".repeat((spam.score.floor() as usize).min(64))
        } else {
            String::new()
        };
        let tests: Vec<String> = spam
            .hits
            .iter()
            .map(|h| format!("{}={}", h.name, round(h.score)))
            .collect();
        let mut status = format!(
            "{}, score={} tagged_above={} required={} tests=[{}]",
            if is_spam { "Yes" } else { "No" },
            round(spam.score),
            round(self.levels.tag),
            round(self.levels.tag2),
            tests.join(", ")
        );
        if let Some(autolearn) = spam.autolearn {
            status.push_str(&format!(" autolearn={autolearn}"));
        }
        let mut headers = vec![
            (
                "X-Spam-Flag".to_string(),
                if is_spam { "YES" } else { "NO" }.to_string(),
            ),
            ("X-Spam-Score".to_string(), round(spam.score)),
        ];
        if !stars.is_empty() {
            headers.push(("X-Spam-Level".to_string(), stars));
        }
        headers.push(("X-Spam-Status".to_string(), fold_status(&status)));
        headers
    }
}

/// Three decimals at most, no trailing zeros: "6.2", "-1.9", "1000".
fn round(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// Folds the status between words so no line exceeds 78 characters
/// (RFC 5322).
fn fold_status(status: &str) -> String {
    let mut out = String::new();
    let mut line_len = "X-Spam-Status: ".len();
    for (i, word) in status.split(' ').enumerate() {
        if i > 0 {
            if line_len + 1 + word.len() > 78 {
                out.push_str("\r\n\t");
                line_len = 8;
            } else {
                out.push(' ');
                line_len += 1;
            }
        }
        out.push_str(word);
        line_len += word.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decider() -> Decider {
        Decider {
            levels: Levels {
                tag: -999.0,
                tag2: 6.2,
                kill: 6.9,
            },
            virus_action: Action::Reject,
            banned_action: Action::Quarantine,
            unchecked_action: Action::Reject,
            spam_kill_action: Action::Reject,
            subject_tag: "***SPAM***".into(),
            maps: RecipientMaps::default(),
        }
    }

    fn spam(score: f64) -> Option<SpamScore> {
        Some(SpamScore {
            autolearn: None,
            score,
            hits: vec![RuleHit {
                name: "TEST_RULE".into(),
                score,
            }],
        })
    }

    fn rcpts() -> Vec<String> {
        vec!["bob@example.com".into()]
    }

    fn header<'a>(v: &'a Verdict, name: &str) -> Option<&'a str> {
        v.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn unchecked_content_fails_closed_unless_pass() {
        let part = BannedPart {
            name: "a.zip/secret.pdf".into(),
            reason: "encrypted".into(),
        };
        let findings = Findings {
            unchecked: vec![part.clone()],
            ..Findings::default()
        };
        let rcpts = ["b@example.com".to_string()];
        let verdict = decider().decide(findings.clone(), &rcpts);
        assert_eq!(verdict.action, Action::Reject);
        assert_eq!(
            verdict.reason,
            "unchecked content: a.zip/secret.pdf (encrypted)"
        );
        let passing = Decider {
            unchecked_action: Action::Pass,
            ..decider()
        };
        let verdict = passing.decide(findings, &rcpts);
        assert_eq!(verdict.action, Action::Pass);
        assert!(verdict.headers.contains(&(
            "X-Unchecked-Content".to_string(),
            "a.zip/secret.pdf (encrypted)".to_string()
        )));
        assert_eq!(parse_unchecked_action("PASS"), Ok(Action::Pass));
        assert!(parse_unchecked_action("deliver").is_err());
    }

    #[test]
    fn ham_is_tagged_and_passes() {
        let v = decider().decide(
            Findings {
                virus_scanned: true,
                spam: spam(1.5),
                ..Findings::default()
            },
            &rcpts(),
        );
        assert_eq!(v.action, Action::Pass);
        assert_eq!(header(&v, "X-Virus-Scanned"), Some("mailgate"));
        assert_eq!(header(&v, "X-Spam-Flag"), Some("NO"));
        assert_eq!(header(&v, "X-Spam-Score"), Some("1.5"));
        assert_eq!(header(&v, "X-Spam-Level"), Some("*"));
        assert_eq!(
            header(&v, "X-Spam-Status"),
            Some("No, score=1.5 tagged_above=-999 required=6.2\r\n\ttests=[TEST_RULE=1.5]")
        );
        assert_eq!(v.subject_tag, None);
    }

    #[test]
    fn levels() {
        let mut d = decider();
        d.levels.tag = 2.0;
        let v = d.decide(
            Findings {
                spam: spam(1.0),
                ..Findings::default()
            },
            &rcpts(),
        );
        assert!(v.headers.is_empty());
        let v = d.decide(
            Findings {
                spam: spam(6.5),
                ..Findings::default()
            },
            &rcpts(),
        );
        assert_eq!(v.action, Action::Pass);
        assert_eq!(header(&v, "X-Spam-Flag"), Some("YES"));
        assert_eq!(v.subject_tag.as_deref(), Some("***SPAM***"));
        let v = d.decide(
            Findings {
                spam: spam(6.9),
                ..Findings::default()
            },
            &rcpts(),
        );
        assert_eq!(v.action, Action::Reject);
        assert_eq!(v.reason, "message looks like spam (score 6.9)");
    }

    #[test]
    fn virus_beats_banned_beats_spam() {
        let banned = vec![BannedPart {
            name: "a.exe".into(),
            reason: "extension .exe".into(),
        }];
        let v = decider().decide(
            Findings {
                virus_scanned: true,
                viruses: vec!["Eicar".into()],
                banned: banned.clone(),
                unchecked: Vec::new(),
                spam: spam(100.0),
            },
            &rcpts(),
        );
        assert_eq!(
            (v.action, v.reason.as_str()),
            (Action::Reject, "virus found: Eicar")
        );
        let v = decider().decide(
            Findings {
                banned,
                unchecked: Vec::new(),
                spam: spam(100.0),
                ..Findings::default()
            },
            &rcpts(),
        );
        assert_eq!(v.action, Action::Quarantine);
        assert_eq!(v.reason, "banned attachment: a.exe (extension .exe)");
    }

    #[test]
    fn lovers_and_bypass_need_every_recipient() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("lovers"),
            "abuse@example.com yes\nnot@example.com no\n",
        )
        .unwrap();
        let table = Table::open("hash:lovers", dir.path()).unwrap();
        let mut d = decider();
        d.maps.spam_lovers = vec![table.clone()];
        d.maps.bypass_virus = vec![table];
        let lover = vec!["abuse@example.com".to_string()];
        let mixed = vec![
            "abuse@example.com".to_string(),
            "bob@example.com".to_string(),
        ];
        let findings = Findings {
            unchecked: Vec::new(),
            spam: spam(50.0),
            ..Findings::default()
        };
        assert_eq!(d.decide(findings.clone(), &lover).action, Action::Pass);
        assert_eq!(d.decide(findings.clone(), &mixed).action, Action::Reject);
        assert_eq!(
            d.decide(findings, &["not@example.com".to_string()]).action,
            Action::Reject
        );
        assert!(!d.maps.checks(&lover).virus);
        assert!(d.maps.checks(&mixed).virus);
        assert!(d.maps.checks(&lover).spam);
    }

    #[test]
    fn parameters() {
        assert_eq!(
            parse_action("virus_action", "Quarantine"),
            Ok(Action::Quarantine)
        );
        assert!(parse_action("virus_action", "bounce").is_err());
        assert_eq!(round(-0.0001), "0");
        assert_eq!(round(1000.0), "1000");
    }

    #[test]
    fn long_status_is_folded() {
        let hits: Vec<RuleHit> = (0..20)
            .map(|i| RuleHit {
                name: format!("SOME_LONG_RULE_NAME_{i}"),
                score: 0.5,
            })
            .collect();
        let v = decider().decide(
            Findings {
                spam: Some(SpamScore {
                    score: 10.0,
                    hits,
                    autolearn: Some("spam"),
                }),
                ..Findings::default()
            },
            &rcpts(),
        );
        let status = header(&v, "X-Spam-Status").unwrap();
        assert!(status.contains("\r\n\t"));
        assert!(status.ends_with(" autolearn=spam"), "{status}");
        let mut lines = status.split("\r\n\t");
        assert!(lines.next().unwrap().len() + "X-Spam-Status: ".len() <= 78);
        assert!(lines.all(|l| l.len() + 8 <= 78));
    }
}
