//! Sendmail macros as Postfix sends them: before each event, the values of
//! the names its milter_*_macros parameter lists (or the names the milter
//! asked for with SMFIR_SETSYMLIST).

use std::collections::HashMap;

/// The protocol stages macros are sent for, in SMFIM_* order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect = 0,
    Helo = 1,
    Mail = 2,
    Rcpt = 3,
    Data = 4,
    Eom = 5,
    Eoh = 6,
}

pub const STAGES: usize = 7;

/// Postfix's defaults for milter_connect_macros ... milter_end_of_data_macros.
pub const DEFAULTS: [(&str, &str); STAGES] = [
    ("milter_connect_macros", "j {daemon_name} {daemon_addr} v _"),
    (
        "milter_helo_macros",
        "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    ),
    (
        "milter_mail_macros",
        "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    ),
    (
        "milter_rcpt_macros",
        "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    ),
    ("milter_data_macros", "i"),
    ("milter_end_of_data_macros", "i"),
    ("milter_end_of_header_macros", "i"),
];

/// The names sent at each stage, and milter_macro_defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MacroLists {
    pub stages: [Vec<String>; STAGES],
    /// Values for macros the MTA has none for (bare names).
    pub defaults: Vec<(String, String)>,
}

impl MacroLists {
    /// From the parameters' values, in [`DEFAULTS`] order.
    pub fn from_values(values: [&str; STAGES]) -> MacroLists {
        let mut lists = MacroLists::default();
        for (i, value) in values.iter().enumerate() {
            lists.stages[i] = split(value);
        }
        lists
    }

    pub fn postfix_defaults() -> MacroLists {
        MacroLists::from_values(DEFAULTS.map(|(_, v)| v))
    }
}

/// Splits a macro list; names keep the braces they were written with.
pub fn split(value: &str) -> Vec<String> {
    value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The name without braces: `{daemon_name}` and `daemon_name` are one macro.
pub fn bare(name: &str) -> &str {
    name.strip_prefix('{')
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or(name)
}

/// The values the MTA knows, by bare name; a name without a value is not
/// sent (Postfix's smtpd_milter_eval answering null).
#[derive(Clone, Debug, Default)]
pub struct Macros {
    values: HashMap<String, String>,
}

impl Macros {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.values.insert(bare(name).to_string(), value.into());
    }

    pub fn unset(&mut self, name: &str) {
        self.values.remove(bare(name));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(bare(name)).map(String::as_str)
    }

    /// The SMFIC_MACRO data for `names`: each name as written, then its
    /// value, or its milter_macro_defaults value when it has none (as
    /// Postfix's milter_macro_lookup). None when none of them has a value.
    pub fn encode(&self, names: &[String], defaults: &[(String, String)]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for name in names {
            let value = self.get(name).or_else(|| {
                defaults
                    .iter()
                    .find(|(n, _)| n == bare(name))
                    .map(|(_, v)| v.as_str())
            });
            if let Some(value) = value {
                for s in [name.as_str(), value] {
                    out.extend(s.bytes().map(|b| if b == 0 { b'?' } else { b }));
                    out.push(0);
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_values_are_sent_with_names_as_written() {
        let mut m = Macros::default();
        m.set("j", "mx.example");
        m.set("{daemon_name}", "mx.example");
        let lists = MacroLists::postfix_defaults();
        let data = m
            .encode(&lists.stages[Stage::Connect as usize], &[])
            .unwrap();
        assert_eq!(data, b"j\0mx.example\0{daemon_name}\0mx.example\0");
        assert_eq!(m.encode(&lists.stages[Stage::Helo as usize], &[]), None);
        // milter_macro_defaults fills only what has no value.
        let defaults = [
            ("tls_version".to_string(), "none".to_string()),
            ("j".to_string(), "not used".to_string()),
        ];
        assert_eq!(
            m.encode(&lists.stages[Stage::Helo as usize], &defaults)
                .unwrap(),
            b"{tls_version}\0none\0"
        );
        let data = m
            .encode(&lists.stages[Stage::Connect as usize], &defaults)
            .unwrap();
        assert!(data.starts_with(b"j\0mx.example\0"));
        m.unset("daemon_name");
        assert_eq!(m.get("{daemon_name}"), None);
    }
}
