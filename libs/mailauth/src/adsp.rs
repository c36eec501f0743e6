//! ADSP (RFC 5617, historic) as SpamAssassin's DKIM plugin looks it up
//! for its DKIM_ADSP_* rules, through Mail::DKIM::AuthorDomainPolicy: the
//! TXT record at `_adsp._domainkey.DOMAIN`, its `dkim=` tag; without a
//! record (or with one that cannot be read), NXDOMAIN for the author
//! domain itself when its MX lookup says so, otherwise "unknown".

use mailgate_dns::{DnsError, classify, dns_name};

use crate::Authenticator;

/// An author domain's signing practices, as SpamAssassin codes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Practice {
    /// 'U': no record, "unknown", anything else, or a DNS failure.
    Unknown,
    /// 'A': dkim=all.
    All,
    /// 'D': dkim=discardable (or the old SSP's "strict").
    Discardable,
    /// 'N': the domain does not exist.
    NxDomain,
}

impl Practice {
    /// SpamAssassin's letter for it (check_dkim_adsp's argument).
    pub fn code(self) -> char {
        match self {
            Practice::Unknown => 'U',
            Practice::All => 'A',
            Practice::Discardable => 'D',
            Practice::NxDomain => 'N',
        }
    }
}

/// Author domains looked up per message at most (a From: may list many).
pub const MAX_LOOKUPS: usize = 5;

/// An ADSP record with a field that is not `tag=value` (Mail::DKIM's
/// "policy syntax error"): read as no record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntaxError;

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ADSP record syntax error: a field without \"=\"")
    }
}

impl std::error::Error for SyntaxError {}

/// Mail::DKIM::Policy's parse of a record: `tag=value` pairs split at
/// ";" (a trailing empty field dropped, as Perl's split does); a field
/// without "=" is a syntax error. The practice is the `dkim` tag's value.
pub fn parse_record(text: &str) -> Result<Practice, SyntaxError> {
    let mut fields: Vec<&str> = text.split(';').collect();
    while fields.last() == Some(&"") {
        fields.pop();
    }
    let mut practice = Practice::Unknown;
    for field in fields {
        let (name, value) = field.trim().split_once('=').ok_or(SyntaxError)?;
        if name.trim_end() == "dkim" {
            practice = match value.trim_start() {
                "all" => Practice::All,
                "discardable" | "strict" => Practice::Discardable,
                v if v.eq_ignore_ascii_case("nxdomain") => Practice::NxDomain,
                _ => Practice::Unknown,
            };
        }
    }
    Ok(practice)
}

impl Authenticator {
    /// The signing practices `domain` publishes, as SpamAssassin (with
    /// Mail::DKIM) finds them.
    pub async fn adsp(&self, domain: &str) -> Practice {
        let resolver = &self.inner().0;
        let name = format!("_adsp._domainkey.{domain}");
        // The last TXT record's strings joined, as Mail::DKIM takes it;
        // None for no record; Err for a lookup that failed.
        let record: Result<Option<String>, DnsError> = match dns_name(&name) {
            Ok(name) => match resolver.txt_lookup(name).await.map_err(classify) {
                Ok(lookup) => Ok(lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        mail_auth::hickory_resolver::proto::rr::RData::TXT(txt) => Some(
                            txt.txt_data
                                .iter()
                                .map(|part| String::from_utf8_lossy(part).into_owned())
                                .collect::<String>(),
                        ),
                        _ => None,
                    })
                    .next_back()),
                Err(DnsError::NotFound | DnsError::NoData) => Ok(None),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        // Perl's truth: an empty record, or "0", is no record.
        if let Ok(Some(text)) = &record
            && !text.is_empty()
            && text != "0"
            && let Ok(practice) = parse_record(text)
        {
            return practice;
        }
        // No record, or one that could not be had or read: does the
        // domain exist?
        let exists = match dns_name(domain) {
            Ok(name) => resolver.mx_lookup(name).await.map_err(classify),
            Err(e) => Err(e),
        };
        match exists {
            Err(DnsError::NotFound) => Practice::NxDomain,
            _ => Practice::Unknown,
        }
    }
}

/// Whether SpamAssassin takes `domain` as a fully qualified author
/// domain for ADSP (`/.\.[a-z-]{2,}\z/i`).
pub fn fully_qualified(domain: &str) -> bool {
    match domain.rsplit_once('.') {
        Some((head, tld)) => {
            !head.is_empty()
                && tld.len() >= 2
                && tld.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_as_mail_dkim_reads_them() {
        assert_eq!(parse_record("dkim=all"), Ok(Practice::All));
        assert_eq!(parse_record("dkim=discardable;"), Ok(Practice::Discardable));
        assert_eq!(parse_record(" dkim = strict "), Ok(Practice::Discardable));
        assert_eq!(parse_record("dkim=unknown"), Ok(Practice::Unknown));
        assert_eq!(parse_record("dkim=All"), Ok(Practice::Unknown));
        assert_eq!(parse_record("dkim=NXDOMAIN"), Ok(Practice::NxDomain));
        assert_eq!(parse_record("x=1"), Ok(Practice::Unknown));
        // A field without "=" is a syntax error, a blank one too.
        assert_eq!(parse_record("dkim=all; junk"), Err(SyntaxError));
        assert_eq!(parse_record("dkim=all; "), Err(SyntaxError));
        assert_eq!(parse_record("dkim=all;;"), Ok(Practice::All));
        // Perl's split drops trailing empty fields: nothing is left.
        assert_eq!(parse_record(";"), Ok(Practice::Unknown));
        assert_eq!(parse_record(";dkim=all"), Err(SyntaxError));
    }

    #[test]
    fn fully_qualified_domains() {
        assert!(fully_qualified("example.com"));
        // As SpamAssassin's pattern: letters and hyphens only.
        assert!(fully_qualified("a.x-y"));
        assert!(!fully_qualified("a.xn--p1ai"));
        assert!(!fully_qualified("localhost"));
        assert!(!fully_qualified("example.c"));
        assert!(!fully_qualified("example.123"));
        assert!(!fully_qualified(".com"));
    }
}
