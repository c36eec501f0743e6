//! The sender-authentication results as SpamAssassin's SPF, DKIM and
//! DMARC plugins expose them to rules (`eval:check_for_spf_pass()`,
//! `eval:check_dkim_valid_author_sig()`, `eval:check_dmarc_reject()`...),
//! so that the stock rules and scores (25_spf.cf, 25_dkim.cf, 25_dmarc.cf,
//! 50_scores.cf) apply to what the gateway found.

use mailgate_ipc::auth::SpfResult;

/// One DKIM signature's domain and whether it verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkimFact {
    /// The signing domain as SpamAssassin takes it: i='s domain when
    /// there is one, else d=; lower case.
    pub domain: String,
    pub valid: bool,
    /// Its key could not be looked up (a DNS failure): not held against
    /// the author domain by ADSP.
    pub temperror: bool,
}

/// The DMARC outcome in SpamAssassin's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DmarcFact {
    Pass,
    /// Failed, with the policy applied: "reject", "quarantine" or "none".
    Fail(&'static str),
    /// The From domain publishes no DMARC record.
    Missing,
    /// A temporary or permanent error: no DMARC rule hits.
    Other,
}

/// Everything the rules may ask.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub spf_helo: Option<SpfResult>,
    /// None for the null sender (SpamAssassin checks no MAIL FROM then).
    pub spf_mail_from: Option<SpfResult>,
    pub dkim_checked: bool,
    /// A DKIM-Signature header is present (valid or not).
    pub dkim_signed: bool,
    pub dkim: Vec<DkimFact>,
    /// The domains of the From: addresses, lower case.
    pub author_domains: Vec<String>,
    /// The envelope sender's domain, lower case.
    pub envelope_domain: Option<String>,
    /// The envelope sender, empty for the null sender.
    pub envelope_sender: String,
    pub dmarc: Option<DmarcFact>,
    /// The message arrived with ARC sets (RFC 8617).
    pub arc_signed: bool,
    /// Its ARC chain validates.
    pub arc_valid: bool,
    /// ADSP's candidates (SpamAssassin's check_dkim_adsp): the fully
    /// qualified author domains without a valid author signature (nor one
    /// whose key lookup failed), each with the practice its DNS publishes
    /// ('U', 'A', 'D' or 'N') when it was looked up.
    pub adsp: Vec<(String, Option<char>)>,
}

/// The eval functions these facts answer.
pub const FUNCTIONS: &[&str] = &[
    "check_for_spf_pass",
    "check_for_spf_neutral",
    "check_for_spf_none",
    "check_for_spf_fail",
    "check_for_spf_softfail",
    "check_for_spf_permerror",
    "check_for_spf_temperror",
    "check_for_spf_helo_pass",
    "check_for_spf_helo_neutral",
    "check_for_spf_helo_none",
    "check_for_spf_helo_fail",
    "check_for_spf_helo_softfail",
    "check_for_spf_helo_permerror",
    "check_for_spf_helo_temperror",
    "check_dkim_signed",
    "check_dkim_valid",
    "check_dkim_valid_author_sig",
    "check_dkim_valid_envelopefrom",
    "check_dkim_dependable",
    "check_arc_signed",
    "check_arc_valid",
    "check_dmarc_pass",
    "check_dmarc_reject",
    "check_dmarc_quarantine",
    "check_dmarc_none",
    "check_dmarc_missing",
];

/// The domains an eval's arguments name ('example.com', "a.org"),
/// lower case.
fn domains(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|a| a.trim().trim_matches(['\'', '"']).to_ascii_lowercase())
        .filter(|a| !a.is_empty())
        .collect()
}

impl Facts {
    /// The value of `function(args)`, as the plugin would compute it;
    /// false for a function these facts do not answer.
    pub fn eval(&self, function: &str, args: &[String]) -> bool {
        if let Some(result) = function.strip_prefix("check_for_spf_helo_") {
            return self.spf_helo.is_some_and(|r| spf_word(r) == Some(result));
        }
        if let Some(result) = function.strip_prefix("check_for_spf_") {
            return self
                .spf_mail_from
                .is_some_and(|r| spf_word(r) == Some(result));
        }
        let wanted = domains(args);
        let listed = |d: &str| wanted.is_empty() || wanted.iter().any(|w| w == d);
        match function {
            "check_dkim_signed" => {
                if wanted.is_empty() {
                    self.dkim_signed
                } else {
                    self.dkim.iter().any(|s| listed(&s.domain))
                }
            }
            "check_dkim_valid" => self.dkim.iter().any(|s| s.valid && listed(&s.domain)),
            "check_dkim_valid_author_sig" => self
                .dkim
                .iter()
                .any(|s| s.valid && listed(&s.domain) && self.author_domains.contains(&s.domain)),
            "check_dkim_valid_envelopefrom" => self.dkim.iter().any(|s| {
                s.valid && listed(&s.domain) && self.envelope_domain.as_ref() == Some(&s.domain)
            }),
            // Nothing is truncated before verification here.
            "check_dkim_dependable" => self.dkim_checked,
            // SpamAssassin's DKIM plugin takes no domain for these: with
            // one, they never hit.
            "check_arc_signed" => self.arc_signed && wanted.is_empty(),
            "check_arc_valid" => self.arc_valid && wanted.is_empty(),
            "check_dmarc_pass" => self.dmarc == Some(DmarcFact::Pass),
            "check_dmarc_reject" => self.dmarc == Some(DmarcFact::Fail("reject")),
            "check_dmarc_quarantine" => self.dmarc == Some(DmarcFact::Fail("quarantine")),
            "check_dmarc_none" => self.dmarc == Some(DmarcFact::Fail("none")),
            "check_dmarc_missing" => self.dmarc == Some(DmarcFact::Missing),
            _ => false,
        }
    }
}

impl Facts {
    /// The signing domains of the signatures that verified.
    pub fn valid_dkim_domains(&self) -> Vec<String> {
        self.dkim
            .iter()
            .filter(|s| s.valid)
            .map(|s| s.domain.clone())
            .collect()
    }

    /// The envelope sender when SPF (MAIL FROM) passed for it.
    pub fn spf_pass_sender(&self) -> Option<String> {
        (self.spf_mail_from == Some(SpfResult::Pass) && !self.envelope_sender.is_empty())
            .then(|| self.envelope_sender.clone())
    }
}

/// The word in SpamAssassin's function names for a result.
fn spf_word(result: SpfResult) -> Option<&'static str> {
    Some(match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::None => "none",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn spamassassin_functions() {
        let facts = Facts {
            spf_helo: Some(SpfResult::None),
            spf_mail_from: Some(SpfResult::SoftFail),
            dkim_checked: true,
            dkim_signed: true,
            dkim: vec![
                DkimFact {
                    domain: "lists.example.net".into(),
                    valid: true,
                    temperror: false,
                },
                DkimFact {
                    domain: "example.org".into(),
                    valid: false,
                    temperror: false,
                },
            ],
            author_domains: vec!["example.org".into()],
            envelope_domain: Some("lists.example.net".into()),
            envelope_sender: "bounces@lists.example.net".into(),
            dmarc: Some(DmarcFact::Fail("quarantine")),
            arc_signed: true,
            arc_valid: true,
            adsp: Vec::new(),
        };
        assert_eq!(facts.valid_dkim_domains(), ["lists.example.net"]);
        // SPF softfail: no sender for the SPF welcomelists.
        assert_eq!(facts.spf_pass_sender(), None);
        assert!(facts.eval("check_arc_signed", &[]));
        assert!(facts.eval("check_arc_valid", &[]));
        assert!(!facts.eval("check_arc_valid", &args(&["'example.org'"])));
        assert!(facts.eval("check_for_spf_softfail", &[]));
        assert!(!facts.eval("check_for_spf_fail", &[]));
        assert!(facts.eval("check_for_spf_helo_none", &[]));
        assert!(!facts.eval("check_for_spf_helo_softfail", &[]));
        assert!(facts.eval("check_dkim_signed", &[]));
        assert!(facts.eval("check_dkim_valid", &[]));
        assert!(facts.eval("check_dkim_valid", &args(&["'lists.example.net'"])));
        assert!(!facts.eval("check_dkim_valid", &args(&["'linkedin.com'"])));
        assert!(!facts.eval("check_dkim_valid_author_sig", &[]));
        assert!(facts.eval("check_dkim_valid_envelopefrom", &[]));
        assert!(facts.eval("check_dmarc_quarantine", &[]));
        assert!(!facts.eval("check_dmarc_reject", &[]));
        assert!(!facts.eval("check_unknown_thing", &[]));
        for f in FUNCTIONS {
            // Every listed function is answered without a panic.
            facts.eval(f, &[]);
        }
        let none = Facts::default();
        assert!(!none.eval("check_for_spf_none", &[]));
        assert!(!none.eval("check_dkim_dependable", &[]));
    }
}
