//! check_client_score: policyd-weight's job done in smtpd. DNS list hits,
//! the client's host name, the HELO name and the sender's domain each add
//! a weight (client_score_*); a total at client_score_reject_level is
//! refused, at client_score_defer_level deferred, and every evaluation is
//! logged with its parts, as policyd-weight logs its "weighted check".

use std::net::IpAddr;

use mailgate_config::restrictions::reversed_address;
use mailgate_dns::DnsError;

use super::names::{literal_inside, valid_hostaddr, valid_hostname, without_trailing_dot};
use super::{Decision, ErrorClass, Evaluator, PeerStatus, State};
use crate::settings::TempfailAction;

/// The weights found, and the lookups that could not be made.
#[derive(Default)]
struct Tally {
    parts: Vec<(String, f64)>,
    failed: Vec<String>,
}

impl Tally {
    fn add(&mut self, name: impl Into<String>, weight: f64) {
        if weight != 0.0 {
            self.parts.push((name.into(), weight));
        }
    }

    fn total(&self) -> f64 {
        self.parts.iter().map(|(_, w)| w).sum()
    }

    fn describe(&self) -> String {
        let mut text: Vec<String> = self
            .parts
            .iter()
            .map(|(name, weight)| format!("{name}={weight}"))
            .collect();
        text.extend(self.failed.iter().map(|what| format!("UNCHECKED_{what}")));
        if text.is_empty() {
            "nothing found".to_string()
        } else {
            text.join(" ")
        }
    }
}

impl Evaluator<'_> {
    pub(super) async fn client_score(&self, st: &mut State) -> Decision {
        let s = self.settings;
        let w = &s.client_score;
        let mut tally = Tally::default();
        let addr = st.peer.addr;
        for site in &w.dnsbl {
            let query = format!("{}.{}", reversed_address(addr), site.list.domain);
            match self.listed(&query, &site.list).await {
                Ok(true) => tally.add(format!("IN_{}", site.list.domain), site.weight),
                Ok(false) => {}
                Err(_) => tally.failed.push(site.list.domain.clone()),
            }
        }
        match st.peer.name_status {
            PeerStatus::Ok => {}
            PeerStatus::Temp => tally.failed.push("CLIENT_NAME".into()),
            PeerStatus::Perm => tally.add("NO_REVERSE_NAME", w.no_reverse_name),
            PeerStatus::Forged => tally.add("FORGED_REVERSE_NAME", w.forged_reverse_name),
        }
        let helo = st.helo.clone();
        if let Some(helo) = &helo {
            self.score_helo(helo, addr, &mut tally).await;
        }
        let sender_domain = st
            .sender
            .as_deref()
            .and_then(mailgate_config::split_address)
            .map(|(_, domain)| without_trailing_dot(&domain).to_string())
            .filter(|d| !d.is_empty() && !d.starts_with('['));
        if let Some(domain) = &sender_domain {
            self.score_sender_domain(domain, helo.as_deref(), &st.peer.name, &mut tally)
                .await;
        }
        // Domain lists: the sender's domain, the HELO name, the client's
        // name; each list counts once.
        let mut names: Vec<String> = sender_domain.into_iter().collect();
        if let Some(helo) = &helo
            && valid_hostname(without_trailing_dot(helo))
        {
            names.push(without_trailing_dot(helo).to_ascii_lowercase());
        }
        if st.peer.name != "unknown" {
            names.push(st.peer.name.to_ascii_lowercase());
        }
        for site in &w.rhsbl {
            for name in &names {
                match self
                    .listed(&format!("{name}.{}", site.list.domain), &site.list)
                    .await
                {
                    Ok(true) => {
                        tally.add(format!("IN_{}", site.list.domain), site.weight);
                        break;
                    }
                    Ok(false) => {}
                    Err(_) => {
                        tally.failed.push(site.list.domain.clone());
                        break;
                    }
                }
            }
        }
        let total = tally.total();
        st.log_whatsup(
            "score",
            &format!("client score {total:.2}: {}", tally.describe()),
        );
        if total >= w.reject_level {
            let r = &w.reject_reply;
            return self.reject(st, ErrorClass::Policy, r.code, &r.status, r.text.clone());
        }
        if !tally.failed.is_empty() {
            // What could not be looked up might have tipped the balance:
            // never a pass on a partial score.
            let text = format!(
                "Client host rejected: cannot check it against {}",
                tally.failed.join(", ")
            );
            return match s.rbl_tempfail {
                TempfailAction::DeferIfPermit => self.defer_if_permit(st, true, 450, "4.7.1", text),
                TempfailAction::Defer => self.reject(st, ErrorClass::Policy, 450, "4.7.1", text),
                TempfailAction::Dunno => Decision::Dunno,
            };
        }
        if total >= w.defer_level {
            let r = &w.defer_reply;
            return self.reject(st, ErrorClass::Policy, r.code, &r.status, r.text.clone());
        }
        Decision::Dunno
    }

    /// A listing in one DNS list (its reply filter applied); Err when the
    /// list could not be asked.
    async fn listed(
        &self,
        query: &str,
        list: &mailgate_config::restrictions::Dnsxl,
    ) -> Result<bool, String> {
        match self.settings.dns.a(query).await {
            Ok(addresses) => Ok(list
                .filter
                .as_ref()
                .is_none_or(|f| addresses.iter().any(|a| f.matches(*a)))),
            Err(DnsError::TempFail(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    async fn score_helo(&self, helo: &str, client: IpAddr, tally: &mut Tally) {
        let w = &self.settings.client_score;
        let bare = literal_inside(helo).unwrap_or(helo);
        let bare = bare
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("IPv6:"))
            .map_or(bare, |_| &bare[5..]);
        if helo.starts_with('[') || valid_hostaddr(bare) {
            match bare.parse::<IpAddr>() {
                Ok(ip) if ip == client => tally.add("HELO_IS_CLIENT", w.helo_is_client),
                _ => tally.add("HELO_NUMERIC", w.helo_numeric),
            }
            return;
        }
        let name = without_trailing_dot(helo);
        if !valid_hostname(name) || !name.contains('.') {
            tally.add("HELO_INVALID", w.helo_invalid);
            return;
        }
        let dns = &self.settings.dns;
        match dns.addresses(name).await {
            Ok(addresses) if addresses.contains(&client) => {
                tally.add("HELO_IS_CLIENT", w.helo_is_client)
            }
            Ok(_) => tally.add("HELO_MISMATCH", w.helo_mismatch),
            Err(DnsError::TempFail(_)) => tally.failed.push("HELO".into()),
            Err(_) => match dns.mx(name).await {
                Ok(_) => tally.add("HELO_MISMATCH", w.helo_mismatch),
                Err(DnsError::TempFail(_)) => tally.failed.push("HELO".into()),
                Err(_) => tally.add("HELO_UNRESOLVABLE", w.helo_unresolvable),
            },
        }
    }

    async fn score_sender_domain(
        &self,
        domain: &str,
        helo: Option<&str>,
        client_name: &str,
        tally: &mut Tally,
    ) {
        let w = &self.settings.client_score;
        let dns = &self.settings.dns;
        match dns.mx(domain).await {
            Ok(_) => {}
            Err(DnsError::TempFail(_)) => tally.failed.push("SENDER_DOMAIN".into()),
            Err(_) => match dns.addresses(domain).await {
                Ok(_) => {}
                Err(DnsError::TempFail(_)) => tally.failed.push("SENDER_DOMAIN".into()),
                Err(_) => tally.add("SENDER_DOMAIN_UNKNOWN", w.sender_domain_unknown),
            },
        }
        // The same organisation's domain (its last two labels: no public
        // suffix list here) as the HELO name's or the client name's.
        let base = |name: &str| {
            let labels: Vec<&str> = name.trim_end_matches('.').rsplitn(3, '.').collect();
            match labels.as_slice() {
                [tld, org, ..] => format!("{org}.{tld}").to_ascii_lowercase(),
                _ => name.to_ascii_lowercase(),
            }
        };
        let sender = base(domain);
        let matches_helo = helo.is_some_and(|h| base(h) == sender);
        let matches_client = client_name != "unknown" && base(client_name) == sender;
        if !matches_helo && !matches_client {
            tally.add("SENDER_DOMAIN_MISMATCH", w.sender_domain_mismatch);
        }
    }
}
