//! The eval tests of SpamAssassin's SPF, DKIM and DMARC plugins
//! (`eval:check_for_spf_pass()`, `eval:check_dkim_valid_author_sig()`,
//! `eval:check_dmarc_reject()`...). This engine does no DNS: the caller
//! (the scanner, from what mailgate-mailauth found before the scan)
//! answers them, so the stock rules and scores of 25_spf.cf, 25_dkim.cf,
//! 25_dmarc.cf and 50_scores.cf apply to the gateway's own results.
//!
//! The rules are `tflags net` in SpamAssassin: they run only with network
//! tests on (`spam_network_tests = yes`, score sets 1 and 3), as
//! SpamAssassin skips them in local-only mode.

/// The sender-authentication results of one message.
pub trait SenderAuth: Sync {
    /// The value of `function(args)`, one of [`FUNCTIONS`], as the plugin
    /// would compute it.
    fn eval(&self, function: &str, args: &[String]) -> bool;
    /// The signing domains of the DKIM signatures that verified, lower
    /// case (for the DKIM welcomelists).
    fn valid_dkim_domains(&self) -> Vec<String>;
    /// The envelope sender, when its SPF (MAIL FROM) passed (for the SPF
    /// welcomelists).
    fn spf_pass_sender(&self) -> Option<String>;
    /// What check_dkim_adsp reads (ADSP, RFC 5617); nothing by default.
    fn adsp(&self) -> Adsp {
        Adsp::default()
    }
}

/// The DKIM check's results SpamAssassin's check_dkim_adsp reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adsp {
    /// The author (From:) domains, lower case.
    pub authors: Vec<String>,
    /// The fully qualified author domains without a valid author
    /// signature (nor one whose key lookup failed), each with the
    /// practices its DNS publishes ('U', 'A', 'D' or 'N') when they were
    /// looked up.
    pub candidates: Vec<(String, Option<char>)>,
}

/// The eval functions a [`SenderAuth`] answers. The welcomelist and ADSP
/// functions are the engine's (evals.rs, with [`AuthWelcomelists`]).
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

/// The SPF and DKIM plugins' welcomelists (`welcomelist_from_dkim`,
/// `welcomelist_auth`, `welcomelist_from_spf`, their `def_` forms from
/// 60_welcomelist_*.cf, and the older `whitelist_` names), and the DKIM
/// plugin's `adsp_override` (60_adsp_override_dkim.cf).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthWelcomelists {
    /// adsp_override: author domain (or `*.domain`, `*`) to practices,
    /// SpamAssassin's letters N, U, A, D, 1, 2, 3.
    pub adsp_override: std::collections::HashMap<String, char>,
    /// (author glob, acceptable signing domain; empty: the author's own).
    pub dkim: Vec<(String, String)>,
    pub def_dkim: Vec<(String, String)>,
    /// Envelope sender globs.
    pub spf: Vec<String>,
    pub def_spf: Vec<String>,
}

impl AuthWelcomelists {
    /// `adsp_override DOMAIN [PRACTICES]` as SpamAssassin takes it:
    /// `@?[*a-z0-9._-]+`, then nxdomain, unknown, all, discardable (the
    /// default), custom_low, custom_med or custom_high.
    pub fn adsp_override(&mut self, rest: &str) -> Result<(), &'static str> {
        let mut words = rest.split_whitespace();
        let domain = words.next().ok_or("adsp_override needs a domain")?;
        let domain = domain.strip_prefix('@').unwrap_or(domain);
        let practices = words.next().unwrap_or("discardable").to_ascii_lowercase();
        let valid = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"*._-".contains(&b));
        if !valid || words.next().is_some() {
            return Err(
                "adsp_override: expected a domain and one of nxdomain, unknown, all, discardable, custom_low, custom_med, custom_high",
            );
        }
        let code = match practices.as_str() {
            "custom_low" => '1',
            "custom_med" => '2',
            "custom_high" => '3',
            "nxdomain" => 'N',
            "unknown" => 'U',
            "all" => 'A',
            "discardable" => 'D',
            _ => {
                return Err(
                    "adsp_override: practices must be nxdomain, unknown, all, discardable, custom_low, custom_med or custom_high",
                );
            }
        };
        self.adsp_override.insert(domain.to_ascii_lowercase(), code);
        Ok(())
    }

    /// SpamAssassin's check_dkim_adsp(CHARS, DOMAINS...): an ADSP
    /// candidate's practices (adsp_override first: the domain, then
    /// `*.` each parent, then `*`; else what its DNS published) are one
    /// of CHARS (`*`: any of N, A, D, 1, 2, 3), and, when DOMAINS are
    /// given, an author domain is one of them (`.dom` or `*.dom`: it or a
    /// subdomain).
    pub fn adsp_hit(&self, adsp: &Adsp, chars: &str, domains: &[String]) -> bool {
        let chars = if chars == "*" { "NAD123" } else { chars };
        let practices = |domain: &str| {
            let labels: Vec<&str> = domain.split('.').collect();
            std::iter::once(domain.to_string())
                .chain((1..=labels.len()).map(|n| {
                    let rest = labels[n..].join(".");
                    if rest.is_empty() {
                        "*".to_string()
                    } else {
                        format!("*.{rest}")
                    }
                }))
                .find_map(|key| self.adsp_override.get(&key).copied())
        };
        let any = adsp.candidates.iter().any(|(domain, published)| {
            practices(domain)
                .or(*published)
                .is_some_and(|p| chars.contains(p))
        });
        if !any || domains.is_empty() {
            return any;
        }
        domains.iter().any(|dom| {
            let dom = dom.trim().trim_matches(['\'', '"']).to_ascii_lowercase();
            match dom.strip_prefix("*.").or_else(|| dom.strip_prefix('.')) {
                Some(parent) => adsp
                    .authors
                    .iter()
                    .any(|a| a == parent || a.ends_with(&format!(".{parent}"))),
                None => adsp.authors.contains(&dom),
            }
        })
    }

    /// Takes a welcomelist directive; false when `name` is not one.
    pub fn directive(&mut self, name: &str, args: &[&str]) -> bool {
        let lower: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
        let name = name.replace("whitelist", "welcomelist");
        match name.as_str() {
            "welcomelist_from_dkim" | "def_welcomelist_from_dkim" => {
                if let Some(author) = lower.first() {
                    let sdid = lower.get(1).cloned().unwrap_or_default();
                    let list = if name.starts_with("def_") {
                        &mut self.def_dkim
                    } else {
                        &mut self.dkim
                    };
                    list.push((author.clone(), sdid));
                }
            }
            "unwelcomelist_from_dkim" => {
                if let Some(author) = lower.first() {
                    let sdid = lower.get(1);
                    for list in [&mut self.dkim, &mut self.def_dkim] {
                        list.retain(|(a, d)| a != author || sdid.is_some_and(|s| s != d));
                    }
                }
            }
            "welcomelist_auth" | "def_welcomelist_auth" => {
                let (dkim, spf) = if name.starts_with("def_") {
                    (&mut self.def_dkim, &mut self.def_spf)
                } else {
                    (&mut self.dkim, &mut self.spf)
                };
                dkim.extend(lower.iter().map(|a| (a.clone(), String::new())));
                spf.extend(lower.iter().cloned());
            }
            "unwelcomelist_auth" => {
                for list in [&mut self.dkim, &mut self.def_dkim] {
                    list.retain(|(a, d)| !(d.is_empty() && lower.contains(a)));
                }
                for list in [&mut self.spf, &mut self.def_spf] {
                    list.retain(|a| !lower.contains(a));
                }
            }
            "welcomelist_from_spf" => self.spf.extend(lower),
            "def_welcomelist_from_spf" => self.def_spf.extend(lower),
            _ => return false,
        }
        true
    }

    /// SpamAssassin's DKIM welcomelist check: an author (From:) address
    /// matches an entry, and a valid signature is by the entry's signing
    /// domain (`.example.com` or `*.example.com`: a subdomain of it), or
    /// by the author's own domain when the entry names none.
    pub fn dkim_listed(&self, def: bool, authors: &[String], valid_sdids: &[String]) -> bool {
        let list = if def { &self.def_dkim } else { &self.dkim };
        authors.iter().any(|author| {
            let author_domain = author.rsplit_once('@').map_or("", |(_, d)| d);
            list.iter()
                .filter(|(glob, _)| crate::evals::glob_matches(glob, author))
                .any(|(_, acceptable)| {
                    let acceptable = acceptable
                        .rsplit_once('@')
                        .map_or(acceptable.as_str(), |(_, d)| d);
                    valid_sdids.iter().any(|sdid| {
                        if acceptable.is_empty() {
                            sdid == author_domain
                        } else if let Some(parent) = acceptable
                            .strip_prefix("*.")
                            .or_else(|| acceptable.strip_prefix('.'))
                        {
                            sdid.ends_with(&format!(".{parent}"))
                        } else {
                            sdid == acceptable
                        }
                    })
                })
        })
    }

    /// SpamAssassin's SPF welcomelist check: the envelope sender, whose
    /// SPF (MAIL FROM) passed, matches an entry.
    pub fn spf_listed(&self, def: bool, sender: &str) -> bool {
        let list = if def { &self.def_spf } else { &self.spf };
        let sender = sender.to_ascii_lowercase();
        list.iter()
            .any(|glob| crate::evals::glob_matches(glob, &sender))
    }
}
