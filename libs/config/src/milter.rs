//! smtpd_milters / non_smtpd_milters as Postfix writes them: a list of
//! `inet:host:port` and `unix:/path` addresses, separated by commas or
//! spaces, each optionally in braces with its own settings
//! (`{ inet:host:port, connect_timeout=10s, default_action=accept }`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::MainConfig;

/// What happens when a milter cannot be reached or misbehaves
/// (milter_default_action).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// Go on as if the milter did not exist.
    Accept,
    /// 550 5.5.0 Service unavailable.
    Reject,
    /// 451 4.7.1 Service unavailable - try again later.
    Tempfail,
    /// Accept the message and put it on hold.
    Quarantine,
    /// 421 4.7.1 Service unavailable - try again later, and disconnect.
    Shutdown,
}

impl DefaultAction {
    pub fn parse(value: &str) -> Result<DefaultAction, SpecError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "accept" => Ok(DefaultAction::Accept),
            "reject" => Ok(DefaultAction::Reject),
            "tempfail" => Ok(DefaultAction::Tempfail),
            "quarantine" => Ok(DefaultAction::Quarantine),
            "shutdown" => Ok(DefaultAction::Shutdown),
            _ => Err(SpecError(format!(
                "milter_default_action = {value}: use accept, reject, tempfail, quarantine or shutdown"
            ))),
        }
    }
}

/// Where a milter listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Inet {
        host: String,
        port: u16,
    },
    /// Relative to the chroot (the queue directory) when smtpd is
    /// chrooted, as in Postfix.
    Unix(PathBuf),
}

/// One milter with its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MilterSpec {
    /// The address as written (`inet:127.0.0.1:8891`): the milter's name
    /// in log lines.
    pub name: String,
    pub address: Address,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub content_timeout: Duration,
    pub default_action: DefaultAction,
}

/// The main.cf settings a milter's own `{ ... }` settings override.
#[derive(Clone, Copy, Debug)]
pub struct Defaults {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub content_timeout: Duration,
    pub default_action: DefaultAction,
}

/// Postfix's: 30s, 30s, 300s, tempfail.
impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(30),
            content_timeout: Duration::from_secs(300),
            default_action: DefaultAction::Tempfail,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

/// A time as Postfix writes it: a number with an optional unit (s, m, h,
/// d, w); seconds without one.
pub fn parse_time(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 604800,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(factor)?))
}

pub fn parse_address(value: &str) -> Result<Address, SpecError> {
    let bad = |why: &str| SpecError(format!("milter {value}: {why}"));
    let (kind, rest) = value
        .split_once(':')
        .ok_or_else(|| bad("expected inet:host:port or unix:pathname"))?;
    match kind {
        "inet" => {
            let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
                let (host, port) = inner
                    .split_once("]:")
                    .ok_or_else(|| bad("expected inet:[address]:port"))?;
                (host.to_string(), port)
            } else {
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| bad("expected inet:host:port"))?;
                (host.to_string(), port)
            };
            if host.is_empty() {
                return Err(bad("no host"));
            }
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?;
            Ok(Address::Inet { host, port })
        }
        "unix" | "local" if !rest.is_empty() => Ok(Address::Unix(PathBuf::from(rest))),
        _ => Err(bad("expected inet:host:port or unix:pathname")),
    }
}

/// Splits a milter list into its items: words, and `{ ... }` groups.
fn items(value: &str) -> Result<Vec<String>, SpecError> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                if depth == 0 {
                    return Err(SpecError(format!("milter list {value}: unbalanced '}}'")));
                }
                depth -= 1;
                current.push(c);
                if depth == 0 {
                    out.push(std::mem::take(&mut current));
                }
            }
            c if depth == 0 && (c.is_whitespace() || c == ',') => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if depth != 0 {
        return Err(SpecError(format!("milter list {value}: missing '}}'")));
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// The milters `parameter` (smtpd_milters) names, with main.cf's
/// milter_*_timeout and milter_default_action for those without their own.
pub fn from_config(config: &MainConfig, parameter: &str) -> Result<Vec<MilterSpec>, SpecError> {
    parse_list(&config.get(parameter), &defaults_from_config(config)?)
}

/// main.cf's milter_*_timeout and milter_default_action, for the milters
/// without their own (and milter_protocol, which must be 6).
pub fn defaults_from_config(config: &MainConfig) -> Result<Defaults, SpecError> {
    let protocol = config.get("milter_protocol");
    if protocol.trim() != "6" {
        return Err(SpecError(format!(
            "milter_protocol = {protocol}: only version 6 is implemented"
        )));
    }
    Ok(Defaults {
        connect_timeout: config.time("milter_connect_timeout"),
        command_timeout: config.time("milter_command_timeout"),
        content_timeout: config.time("milter_content_timeout"),
        default_action: DefaultAction::parse(&config.get("milter_default_action"))?,
    })
}

/// A result of smtpd_milter_maps: a milter list as smtpd_milters writes
/// it, or DISABLE (any case) for none (Postfix 3.2's smtpd_milter_maps).
pub fn parse_map_result(value: &str, defaults: &Defaults) -> Result<Vec<MilterSpec>, SpecError> {
    if value.trim().eq_ignore_ascii_case("DISABLE") {
        return Ok(Vec::new());
    }
    parse_list(value, defaults)
}

/// milter_macro_defaults: `name=value` or `{ name = value }` pairs,
/// separated by commas or white space; a name may be written `{name}`.
/// Names come back without braces (the form macros are kept in); the first
/// of two entries for one name counts, as in Postfix.
pub fn parse_macro_defaults(value: &str) -> Result<Vec<(String, String)>, SpecError> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                return Err(SpecError(format!("{value}: unbalanced '}}'")));
            }
            '}' => depth -= 1,
            c if depth == 0 && (c.is_whitespace() || c == ',') => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if depth != 0 {
        return Err(SpecError(format!("{value}: missing '}}'")));
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for token in tokens {
        // { name = value }: the whole pair in braces.
        let pair = match token.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(inner) if inner.contains('=') => inner.trim(),
            _ => token.as_str(),
        };
        let Some((name, val)) = pair.split_once('=') else {
            return Err(SpecError(format!(
                "malformed entry \"{token}\": expected name=value"
            )));
        };
        let name = name.trim();
        let name = name
            .strip_prefix('{')
            .and_then(|n| n.strip_suffix('}'))
            .unwrap_or(name)
            .trim();
        if name.is_empty() || name.contains(['{', '}']) {
            return Err(SpecError(format!(
                "malformed entry \"{token}\": no macro name"
            )));
        }
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), val.trim().to_string()));
        }
    }
    Ok(out)
}

/// Parses smtpd_milters or non_smtpd_milters.
pub fn parse_list(value: &str, defaults: &Defaults) -> Result<Vec<MilterSpec>, SpecError> {
    let mut out = Vec::new();
    for item in items(value)? {
        let Some(inner) = item.strip_prefix('{').and_then(|i| i.strip_suffix('}')) else {
            out.push(MilterSpec {
                name: item.clone(),
                address: parse_address(&item)?,
                connect_timeout: defaults.connect_timeout,
                command_timeout: defaults.command_timeout,
                content_timeout: defaults.content_timeout,
                default_action: defaults.default_action,
            });
            continue;
        };
        let mut parts = inner.split(',').map(str::trim).filter(|p| !p.is_empty());
        let name = parts
            .next()
            .ok_or_else(|| SpecError(format!("milter {item}: no address")))?
            .to_string();
        let mut spec = MilterSpec {
            address: parse_address(&name)?,
            name,
            connect_timeout: defaults.connect_timeout,
            command_timeout: defaults.command_timeout,
            content_timeout: defaults.content_timeout,
            default_action: defaults.default_action,
        };
        for part in parts {
            let (key, val) = part
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| SpecError(format!("milter {item}: expected name=value: {part}")))?;
            let time = || {
                parse_time(val).ok_or_else(|| SpecError(format!("milter {item}: bad time {part}")))
            };
            match key {
                "connect_timeout" => spec.connect_timeout = time()?,
                "command_timeout" => spec.command_timeout = time()?,
                "content_timeout" => spec.content_timeout = time()?,
                "default_action" => spec.default_action = DefaultAction::parse(val)?,
                "protocol" if val == "6" => {}
                "protocol" => {
                    return Err(SpecError(format!(
                        "milter {item}: protocol {val}: only version 6 is implemented"
                    )));
                }
                _ => {
                    return Err(SpecError(format!("milter {item}: unknown setting {key}")));
                }
            }
        }
        out.push(spec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(30),
            content_timeout: Duration::from_secs(300),
            default_action: DefaultAction::Tempfail,
        }
    }

    #[test]
    fn postfix_forms() {
        let list = parse_list(
            "inet:127.0.0.1:8891, unix:/opendkim/opendkim.sock \
             { inet:[::1]:11332, connect_timeout=10s, default_action=accept }",
            &defaults(),
        )
        .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(
            list[0].address,
            Address::Inet {
                host: "127.0.0.1".into(),
                port: 8891
            }
        );
        assert_eq!(
            list[1].address,
            Address::Unix("/opendkim/opendkim.sock".into())
        );
        assert_eq!(list[1].default_action, DefaultAction::Tempfail);
        assert_eq!(list[2].name, "inet:[::1]:11332");
        assert_eq!(list[2].connect_timeout, Duration::from_secs(10));
        assert_eq!(list[2].default_action, DefaultAction::Accept);
        assert!(parse_list("", &defaults()).unwrap().is_empty());
    }

    #[test]
    fn mistakes_are_named() {
        for bad in [
            "inet:host",
            "inet:host:0",
            "tcp:1.2.3.4:5",
            "unix:",
            "{ inet:h:1, bogus=1 }",
            "{ inet:h:1, protocol=2 }",
            "{ inet:h:1",
        ] {
            assert!(parse_list(bad, &defaults()).is_err(), "{bad}");
        }
        assert!(DefaultAction::parse("bounce").is_err());
        assert_eq!(parse_time("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_time("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_time("x"), None);
    }

    #[test]
    fn map_results_and_macro_defaults() {
        assert!(parse_map_result("disable", &defaults()).unwrap().is_empty());
        assert_eq!(
            parse_map_result("inet:127.0.0.1:1, inet:127.0.0.1:2", &defaults())
                .unwrap()
                .len(),
            2
        );
        assert!(parse_map_result("DISABLED", &defaults()).is_err());
        let d = parse_macro_defaults(
            "auth_type=none, {tls_version}=none { client_name = unknown host } \
             auth_type=again",
        )
        .unwrap();
        assert_eq!(
            d,
            [
                ("auth_type".to_string(), "none".to_string()),
                ("tls_version".to_string(), "none".to_string()),
                ("client_name".to_string(), "unknown host".to_string()),
            ]
        );
        assert!(parse_macro_defaults("").unwrap().is_empty());
        for bad in ["novalue", "=x", "{a=b", "a=b}"] {
            assert!(parse_macro_defaults(bad).is_err(), "{bad}");
        }
    }
}
