//! check_client_score: policyd-weight's weighted checks, as main.cf
//! configures them (the client_score_* parameters). Parsed here so that
//! `mailgate check` and smtpd read them the same way.

use crate::main_cf::MainConfig;
use crate::restrictions::Dnsxl;

/// A DNS list and what a listing adds.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightedList {
    pub list: Dnsxl,
    pub weight: f64,
}

impl WeightedList {
    /// `domain[=filter]*weight`, as postscreen writes its DNS lists; the
    /// weight defaults to 1.
    pub fn parse(spec: &str) -> Result<WeightedList, String> {
        let (list, weight) = match spec.rsplit_once('*') {
            Some((list, weight)) => (
                list,
                weight
                    .parse::<f64>()
                    .ok()
                    .filter(|w| w.is_finite())
                    .ok_or_else(|| format!("\"{spec}\": \"{weight}\" is not a weight"))?,
            ),
            None => (spec, 1.0),
        };
        Ok(WeightedList {
            list: Dnsxl::parse(list)?,
            weight,
        })
    }
}

/// A reply a parameter gives in full: code, enhanced status, text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedReply {
    pub code: u16,
    pub status: String,
    pub text: String,
}

impl FixedReply {
    /// "450 4.7.1 text"; `class` is the first digit the code must have.
    fn parse(parameter: &str, value: &str, class: u16) -> Result<FixedReply, String> {
        let bad = || format!("{parameter}: \"{value}\" is not \"{class}NN {class}.X.Y text\"");
        let mut words = value.splitn(3, ' ');
        let code: u16 = words.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
        let status = words.next().ok_or_else(bad)?.to_string();
        let text = words.next().unwrap_or("").trim().to_string();
        let parts: Vec<&str> = status.split('.').collect();
        let digit = |s: &str| s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty();
        if code / 100 != class
            || parts.len() != 3
            || parts[0] != class.to_string()
            || !parts.iter().all(|p| digit(p))
            || text.is_empty()
        {
            return Err(bad());
        }
        Ok(FixedReply { code, status, text })
    }
}

/// Everything check_client_score weighs.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientScore {
    pub dnsbl: Vec<WeightedList>,
    pub rhsbl: Vec<WeightedList>,
    pub no_reverse_name: f64,
    pub forged_reverse_name: f64,
    pub helo_invalid: f64,
    pub helo_numeric: f64,
    pub helo_unresolvable: f64,
    pub helo_mismatch: f64,
    pub helo_is_client: f64,
    pub sender_domain_unknown: f64,
    pub sender_domain_mismatch: f64,
    pub defer_level: f64,
    pub reject_level: f64,
    pub reject_reply: FixedReply,
    pub defer_reply: FixedReply,
}

impl ClientScore {
    pub fn load(config: &MainConfig) -> Result<ClientScore, String> {
        let lists = |name: &str| -> Result<Vec<WeightedList>, String> {
            config
                .list(name)
                .iter()
                .map(|spec| WeightedList::parse(spec).map_err(|e| format!("{name}: {e}")))
                .collect()
        };
        let score = |name: &str| config.score(&format!("client_score_{name}"));
        let defer_level = score("defer_level");
        let reject_level = score("reject_level");
        if defer_level > reject_level {
            return Err(format!(
                "client_score_defer_level ({defer_level}) is above client_score_reject_level ({reject_level})"
            ));
        }
        Ok(ClientScore {
            dnsbl: lists("client_score_dnsbl_sites")?,
            rhsbl: lists("client_score_rhsbl_sites")?,
            no_reverse_name: score("no_reverse_name"),
            forged_reverse_name: score("forged_reverse_name"),
            helo_invalid: score("helo_invalid"),
            helo_numeric: score("helo_numeric"),
            helo_unresolvable: score("helo_unresolvable"),
            helo_mismatch: score("helo_mismatch"),
            helo_is_client: score("helo_is_client"),
            sender_domain_unknown: score("sender_domain_unknown"),
            sender_domain_mismatch: score("sender_domain_mismatch"),
            defer_level,
            reject_level,
            reject_reply: FixedReply::parse(
                "client_score_reject_reply",
                &config.get("client_score_reject_reply"),
                5,
            )?,
            defer_reply: FixedReply::parse(
                "client_score_defer_reply",
                &config.get("client_score_defer_reply"),
                4,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Result<ClientScore, String> {
        let config = MainConfig::parse(text, Path::new("main.cf"), Path::new("/"), &[])
            .map_err(|e| e.to_string())?;
        ClientScore::load(&config)
    }

    #[test]
    fn defaults_and_weighted_lists() {
        let s = load("client_score_dnsbl_sites = zen.test=127.0.0.[2..11]*3.5, bl.test\n").unwrap();
        assert_eq!(s.dnsbl.len(), 2);
        assert_eq!(s.dnsbl[0].weight, 3.5);
        assert_eq!(s.dnsbl[0].list.domain, "zen.test");
        assert!(s.dnsbl[0].list.filter.is_some());
        assert_eq!(s.dnsbl[1].weight, 1.0);
        assert_eq!(s.reject_reply.code, 550);
        assert_eq!(s.defer_reply.status, "4.7.1");
        assert_eq!((s.defer_level, s.reject_level), (3.5, 5.0));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, hint) in [
            (
                "client_score_dnsbl_sites = zen.test*lots\n",
                "is not a weight",
            ),
            (
                "client_score_rhsbl_sites = bad_domain!*2\n",
                "not a DNS list domain",
            ),
            (
                "client_score_reject_reply = 450 4.7.1 no\n",
                "client_score_reject_reply",
            ),
            (
                "client_score_defer_reply = 450 nonsense\n",
                "client_score_defer_reply",
            ),
            ("client_score_defer_level = 9\n", "is above"),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.contains(hint), "{text}: {e}");
        }
    }
}
